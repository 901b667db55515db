"""apt-get, apt-mark and dnf against pkgs.k8s.io as it really is: one repository per minor.

pkgs.k8s.io serves each minor from its own repository (`core:/stable:/v1.31/deb/` offers only
v1.31.x; https://kubernetes.io/blog/2023/08/15/pkgs-k8s-io-introduction/ and the kubeadm
upgrade guide, "Changing the package repository"). So a node moves to a new minor only after its
source names that minor, and for apt only after `apt-get update` re-read the source into
/var/lib/apt/lists (apt installs from those cached lists, never from the source file itself:
apt-get(8), "update"). dnf reads /etc/yum.repos.d on every run and keeps metadata per repository
URL in /var/cache/dnf, so a changed baseurl is fetched on the next run (dnf.conf(5),
"metadata_expire"; the cache directory is named after the repo id and a hash of its URL).
Holds (apt-mark) and the repo's `exclude=` (dnf) keep the packages where they are.
"""

from __future__ import annotations

import configparser
import fnmatch
import glob
import hashlib
import os
import re
import sys
from typing import Any

from testbed.fleet.shims.nodestate import Node, fail

KUBE_PACKAGES = ("kubeadm", "kubelet", "kubectl")
# The newest patch each minor's repository offers here (a frozen, smaller pkgs.k8s.io).
LATEST_PATCH = {28: 15, 29: 15, 30: 14, 31: 5, 32: 3, 33: 2, 34: 0}
REVISION = "1.1"  # pkgs.k8s.io's package revision: kubeadm 1.31.3-1.1
APT_SOURCES = "/etc/apt/sources.list.d"
APT_SOURCE = APT_SOURCES + "/kubernetes.list"
APT_KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
APT_LISTS = "/var/lib/apt/lists"
DNF_REPO = "/etc/yum.repos.d/kubernetes.repo"
DNF_CACHE = "/var/cache/dnf"
# pkgs.k8s.io and its mirrors (e.g. mirrors.aliyun.com/kubernetes-new/core/stable/v1.31/deb/)
# keep the minor as a path component right before deb/ or rpm/.
MINOR_IN_URL = re.compile(r"/v1\.(\d+)/(?:deb|rpm)/?$")
# apt-secure(8)'s NO_PUBKEY for pkgs.k8s.io's signing key.
PKGS_KEY_ID = "234654DA9A296436"
DPKG_LOCK = (
    "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n"
    "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?"
)
DNF_NOT_ROOT = (
    "Error: This command has to be run with superuser privileges (under the root user on most "
    "systems)."
)


def run(node: Node, command: str, args: list[str]) -> int:
    if command == "apt-mark":
        return apt_mark(node, args)
    if command == "dnf":
        return dnf(node, args)
    return apt_get(node, args)


def apt_source_line(minor: int, base: str = "https://pkgs.k8s.io/core:/stable:") -> str:
    return f"deb [signed-by={APT_KEYRING}] {base}/v1.{minor}/deb/ /"


def dnf_repo_text(minor: int) -> str:
    """The repo file of the kubeadm install guide (Red Hat-based distributions)."""
    url = f"https://pkgs.k8s.io/core:/stable:/v1.{minor}/rpm/"
    return (
        f"[kubernetes]\nname=Kubernetes\nbaseurl={url}\nenabled=1\ngpgcheck=1\n"
        f"gpgkey={url}repodata/repomd.xml.key\n"
        "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"
    )


def minor_of(version: str) -> int:
    """`v1.31.2` or `1.31.2-1.1` -> 31."""
    return int(version.removeprefix("v").split(".")[1])


def offered(minor: int) -> list[str]:
    """The versions of each kube package in the minor's repository, oldest first."""
    return [f"1.{minor}.{patch}-{REVISION}" for patch in range(LATEST_PATCH.get(minor, -1) + 1)]


def write_sources(root: str, version: str) -> None:
    """A host prepared as the kubeadm install guide says, for `version`'s minor: the apt source,
    its keyring and the lists a first `apt-get update` fetched, and the dnf repo file."""
    minor = minor_of(version)
    for directory in (APT_SOURCES, os.path.dirname(APT_KEYRING), APT_LISTS, DNF_CACHE):
        os.makedirs(_under(root, directory), exist_ok=True)
    os.makedirs(_under(root, os.path.dirname(DNF_REPO)), exist_ok=True)
    _write(_under(root, APT_SOURCE), apt_source_line(minor) + "\n")
    _write(_under(root, APT_KEYRING), f"(pkgs.k8s.io signing key {PKGS_KEY_ID})\n")
    url = _url_of(apt_source_line(minor))
    _write(_under(root, APT_LISTS + "/" + _lists_name(url)), _packages_index(minor))
    _write(_under(root, DNF_REPO), dnf_repo_text(minor))


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


def _flags(args: list[str]) -> tuple[set[str], list[str]]:
    flags: set[str] = set()
    words: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-o", "-c", "-t"):
            skip = True
        elif arg.startswith("--"):
            flags.add(arg.split("=", 1)[0])
            flags.add(arg)
        elif arg.startswith("-") and len(arg) > 1:
            flags.update(f"-{char}" for char in arg[1:])
        else:
            words.append(arg)
    return flags, words


# --- apt: sources -> `apt-get update` -> lists -> `apt-get install` ---------------------------


def _url_of(line: str) -> str:
    """The URI of a one-line `deb [options] URI suite` source."""
    words = re.sub(r"\[[^]]*\]", " ", line).split()
    return words[1] if len(words) > 1 else ""


def _signed_by(line: str) -> str | None:
    found = re.search(r"signed-by=([^]\s]+)", line)
    return found[1] if found else None


def _lists_name(url: str) -> str:
    """apt's name for a flat repository's cached index: the URI without its scheme, `/` as `_`."""
    return re.sub(r"^\w+://", "", url).rstrip("/").replace("/", "_") + "_Packages"


def _packages_index(minor: int) -> str:
    stanzas = [
        f"Package: {name}\nArchitecture: amd64\nVersion: {version}\n"
        for version in offered(minor)
        for name in KUBE_PACKAGES
    ]
    return "\n".join(stanzas)


def _apt_sources(node: Node) -> list[str]:
    lines: list[str] = []
    for path in sorted(glob.glob(node.host_path(APT_SOURCES) + "/*.list")):
        lines += [line.strip() for line in _read(path).splitlines()]
    return [line for line in lines if line.startswith("deb ")]


def apt_update(node: Node) -> int:
    if not node.privileged():
        return fail(
            "Reading package lists... Done\n"
            "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)\n"
            "E: Unable to lock directory /var/lib/apt/lists/",
            100,
        )
    lists = node.host_path(APT_LISTS)
    fetched: dict[str, str] = {}
    for number, line in enumerate(_apt_sources(node), start=1):
        url = _url_of(line)
        minor = MINOR_IN_URL.search(url)
        if minor is None:
            print(f"Ign:{number} {url}  InRelease\nErr:{number} {url}  Release\n  404  Not Found")
            return fail(f"E: The repository '{url}  Release' does not have a Release file.", 100)
        keyring = _signed_by(line)
        if keyring is None or not os.path.exists(node.host_path(keyring)):
            return fail(
                f"W: GPG error: {url}  InRelease: The following signatures couldn't be verified "
                f"because the public key is not available: NO_PUBKEY {PKGS_KEY_ID}\n"
                f"E: The repository '{url}  InRelease' is not signed.",
                100,
            )
        name = _lists_name(url)
        seen = os.path.exists(os.path.join(lists, name))
        print(f"Hit:{number} {url}  InRelease" if seen else f"Get:{number} {url}  InRelease")
        fetched[name] = _packages_index(int(minor[1]))
    # Lists of sources no longer configured are dropped, as apt does on update.
    for stale in glob.glob(lists + "/*_Packages"):
        if os.path.basename(stale) not in fetched:
            os.remove(stale)
    for name, index in fetched.items():
        _write(os.path.join(lists, name), index)
    print("Reading package lists...")
    return 0


def _apt_available(node: Node) -> dict[str, list[str]]:
    available: dict[str, list[str]] = {}
    for path in glob.glob(node.host_path(APT_LISTS) + "/*_Packages"):
        for stanza in _read(path).split("\n\n"):
            fields = dict(
                line.split(": ", 1) for line in stanza.strip().splitlines() if ": " in line
            )
            if "Package" in fields and "Version" in fields:
                available.setdefault(fields["Package"], []).append(fields["Version"])
    return available


def _newest(versions: list[str]) -> str:
    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", version))

    return max(versions, key=key)


def _apt_resolve(name: str, pattern: str | None, available: dict[str, list[str]]) -> str | None:
    """apt's candidate for `name[=pattern]` (a glob since apt 1.x); None: apt cannot find it."""
    if name not in KUBE_PACKAGES:
        return pattern or "1.0-1"  # anything else comes from the distribution's own archive
    versions = available.get(name, [])
    matching = [v for v in versions if pattern is None or fnmatch.fnmatchcase(v, pattern)]
    return _newest(matching) if matching else None


def apt_get(node: Node, args: list[str]) -> int:
    flags, words = _flags(args)
    if not words:
        return fail("E: Invalid operation", 100)
    if words[0] == "update":
        return apt_update(node)
    if words[0] != "install":
        print(f"Reading package lists...\n0 upgraded, 0 newly installed ({words[0]}).")
        return 0
    if not node.privileged():
        return fail(DPKG_LOCK, 100)
    print("Reading package lists...\nBuilding dependency tree...\nReading state information...")
    available = _apt_available(node)
    wanted: dict[str, str] = {}
    for word in words[1:]:
        name, _, pattern = word.partition("=")
        if name in KUBE_PACKAGES and name not in available:
            return fail(f"E: Unable to locate package {name}", 100)
        version = _apt_resolve(name, pattern or None, available)
        if version is None:
            return fail(f"E: Version '{pattern}' for '{name}' was not found", 100)
        wanted[name] = version
    return _install(node, wanted, flags, dnf=False)


def apt_mark(node: Node, args: list[str]) -> int:
    _, words = _flags(args)
    if not words:
        return fail("apt-mark: no operation given", 100)
    operation, names = words[0], words[1:]
    if operation == "showhold":
        print("\n".join(node.read_state()["held"]))
        return 0
    if operation not in ("hold", "unhold"):
        return fail(f"E: Invalid operation {operation}", 100)
    if not node.privileged():
        return fail(
            "E: Could not create temporary file for /var/lib/apt/extended_states - mkstemp "
            "(13: Permission denied)\nE: Failed to write temporary StateFile "
            "/var/lib/apt/extended_states",
            100,
        )
    with node.state() as state:
        held = set(state["held"])
        for name in names:
            if operation == "hold":
                already = name in held
                print(f"{name} was already set on hold." if already else f"{name} set on hold.")
                held.add(name)
            else:
                was = name in held
                print(f"Canceled hold on {name}." if was else f"{name} was already not on hold.")
                held.discard(name)
        state["held"] = sorted(held)
    return 0


# --- dnf: the repo file, its metadata cache, exclude= -----------------------------------------


def _dnf_repo(node: Node) -> dict[str, str] | None:
    path = node.host_path(DNF_REPO)
    if not os.path.exists(path):
        return None
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    if "kubernetes" not in parser or parser["kubernetes"].get("enabled", "1") != "1":
        return None
    return dict(parser["kubernetes"])


def _dnf_cache(node: Node, baseurl: str) -> str:
    digest = hashlib.sha256(baseurl.encode()).hexdigest()[:16]
    return os.path.join(node.host_path(DNF_CACHE), f"kubernetes-{digest}", "primary")


def _dnf_metadata(node: Node, repo: dict[str, str]) -> list[str] | None:
    """The repository's versions, fetched into the cache when this URL has none yet."""
    baseurl = repo.get("baseurl", "").strip()
    cache = _dnf_cache(node, baseurl)
    if os.path.exists(cache):
        return _read(cache).split()
    minor = MINOR_IN_URL.search(baseurl)
    if minor is None:
        return None
    versions = offered(int(minor[1]))
    print(f"Kubernetes{'':<40}12 kB/s | {len(versions) * 3:>3} kB     00:00")
    if node.privileged():  # an unprivileged dnf keeps its metadata elsewhere, for itself
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        _write(cache, "\n".join(versions))
    return versions


def _dnf_wanted(word: str) -> tuple[str, str]:
    """`kubeadm-1.32.0` -> (kubeadm, 1.32.0-*): dnf matches name-version[-release]."""
    for name in KUBE_PACKAGES:
        if word == name:
            return name, "*"
        if word.startswith(name + "-"):
            version = word[len(name) + 1 :]
            return name, version if "-" in version else version + "-*"
    return word, ""


def dnf(node: Node, args: list[str]) -> int:
    flags, words = _flags(args)
    verb = words[0] if words else ""
    repo = _dnf_repo(node)
    if verb == "makecache":
        if repo is not None and _dnf_metadata(node, repo) is None:
            return fail("Error: Failed to download metadata for repo 'kubernetes'")
        print("Metadata cache created.")
        return 0
    if verb not in ("install", "upgrade"):
        print("Last metadata expiration check: 0:01:00 ago.")
        return 0
    if not node.privileged():
        return fail(DNF_NOT_ROOT)
    versions = _dnf_metadata(node, repo) if repo is not None else []
    if versions is None:
        return fail("Error: Failed to download metadata for repo 'kubernetes'")
    lifted = {"--disableexcludes=kubernetes", "--disableexcludes=all"} & flags
    excluded = set() if lifted or repo is None else set(repo.get("exclude", "").split())
    wanted: dict[str, str] = {}
    for word in words[1:]:
        name, pattern = _dnf_wanted(word)
        if name not in KUBE_PACKAGES:
            wanted[name] = "1.0-1"
            continue
        matching = [v for v in versions if fnmatch.fnmatchcase(v, pattern)]
        if name in excluded or not matching:
            print(f"No match for argument: {word}")
            return fail(f"Error: Unable to find a match: {word}")
        wanted[name] = _newest(matching)
    return _install(node, wanted, flags, dnf=True)


# --- both: the change itself -------------------------------------------------------------------


def _install(node: Node, wanted: dict[str, str], flags: set[str], *, dnf: bool) -> int:
    with node.state() as state:
        changes = {n: v for n, v in wanted.items() if state["packages"].get(n) != v}
        held = [n for n in changes if n in state["held"]]
        if held and not dnf and "--allow-change-held-packages" not in flags:
            return fail(
                "E: Held packages were changed and -y was used without "
                "--allow-change-held-packages.",
                100,
            )
        if changes and not ({"-y", "--yes", "--assume-yes"} & flags):
            print("Do you want to continue? [Y/n] ", end="", flush=True)
            if sys.stdin.readline().strip().lower() not in ("y", "yes", ""):
                print("Abort.")
                return 1
        _apply(state, changes)
    for name, version in changes.items():
        print(f"Setting up {name} ({version}) ...")
    print("Complete!" if dnf else f"{len(changes)} upgraded or newly installed.")
    return 0


def _apply(state: dict[str, Any], changes: dict[str, str]) -> None:
    state["packages"].update(changes)
    if "kubelet" in changes:
        state["unit_changed"] = True  # the package ships a new unit drop-in
