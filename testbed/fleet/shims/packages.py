"""apt-get, apt-mark and dnf as pkgs.k8s.io repositories behave: versioned installs, holds that
block changes, and dnf's `exclude=` that only --disableexcludes=kubernetes lifts."""

from __future__ import annotations

import fnmatch
import re
import sys
from typing import Any

from testbed.fleet.shims.nodestate import Node, fail

KUBE_PACKAGES = ("kubeadm", "kubelet", "kubectl")
KUBE_VERSION = re.compile(r"^1\.\d+\.\d+-1\.1$")


def run(node: Node, command: str, args: list[str]) -> int:
    if command == "apt-mark":
        return apt_mark(node, args)
    if command == "dnf":
        return dnf(node, args)
    return apt_get(node, args)


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


def _resolve(name: str, pattern: str | None, state: dict[str, Any]) -> str | None:
    """The version apt would pick for `name[=pattern]`; None when there is no such version."""
    if name not in KUBE_PACKAGES:
        return pattern or "1.0-1"
    if pattern is None:
        current = state.get("cluster_version") or "v1.31.2"
        return current.removeprefix("v") + "-1.1"
    candidate = pattern.replace("*", "1.1") if pattern.endswith("-*") else pattern
    if KUBE_VERSION.match(candidate) and fnmatch.fnmatch(candidate, pattern):
        return candidate
    return None


def _install(
    node: Node, wanted: list[tuple[str, str | None]], flags: set[str], *, dnf: bool
) -> int:
    with node.state() as state:
        changes: dict[str, str] = {}
        for name, pattern in wanted:
            version = _resolve(name, pattern, state)
            if version is None:
                if dnf:
                    return fail(f"Error: Unable to find a match: {name}-{pattern}")
                return fail(f"E: Version '{pattern}' for '{name}' was not found", 100)
            if state["packages"].get(name) != version:
                changes[name] = version
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
        state["packages"].update(changes)
        if "kubelet" in changes:
            state["unit_changed"] = True  # the deb ships a new unit drop-in
    for name, version in changes.items():
        print(f"Setting up {name} ({version}) ...")
    print("Complete!" if dnf else f"{len(changes)} upgraded or newly installed.")
    return 0


def apt_get(node: Node, args: list[str]) -> int:
    flags, words = _flags(args)
    if not words:
        return fail("E: Invalid operation", 100)
    if words[0] == "update":
        print(
            "Hit:1 https://pkgs.k8s.io/core:/stable:/v1.31/deb  InRelease\nReading package lists..."
        )
        return 0
    if words[0] != "install":
        print(f"Reading package lists...\n0 upgraded, 0 newly installed ({words[0]}).")
        return 0
    wanted = [(w.split("=", 1)[0], w.split("=", 1)[1] if "=" in w else None) for w in words[1:]]
    return _install(node, wanted, flags, dnf=False)


def apt_mark(node: Node, args: list[str]) -> int:
    _, words = _flags(args)
    if not words:
        return fail("apt-mark: no operation given", 100)
    operation, names = words[0], words[1:]
    if operation == "showhold":
        print("\n".join(node.read_state()["held"]))
        return 0
    with node.state() as state:
        held = set(state["held"])
        for name in names:
            if operation == "hold":
                print(
                    f"{name} was already set on hold." if name in held else f"{name} set on hold."
                )
                held.add(name)
            elif operation == "unhold":
                print(
                    f"Canceled hold on {name}."
                    if name in held
                    else f"{name} was already not on hold."
                )
                held.discard(name)
            else:
                return fail(f"E: Invalid operation {operation}", 100)
        state["held"] = sorted(held)
    return 0


def dnf(node: Node, args: list[str]) -> int:
    flags, words = _flags(args)
    if words[:1] not in (["install"], ["upgrade"]):
        print("Last metadata expiration check: 0:01:00 ago.")
        return 0
    lifted = "--disableexcludes=kubernetes" in flags or "--disableexcludes=all" in flags
    wanted: list[tuple[str, str | None]] = []
    for word in words[1:]:
        match = re.match(r"^(kubeadm|kubelet|kubectl)(?:-(\d[\w.*-]*))?$", word)
        if match is None:
            wanted.append((word, None))
            continue
        if not lifted:  # the kubernetes repo file carries exclude=kubelet kubeadm kubectl
            return fail(f"Error: Unable to find a match: {word}")
        version = match[2]
        if version and "-" not in version:
            version += "-*"
        wanted.append((match[1], version))
    return _install(node, wanted, flags, dnf=True)
