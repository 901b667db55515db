"""systemctl, swapoff, modprobe, sysctl, kubelet, kubectl, containerd and sudo on a node: the
kubelet restart is what moves the Node's kubeletVersion in the fake apiserver."""

from __future__ import annotations

import glob
import os
import re
import sys

from testbed.fleet.shims.nodestate import SIMULATED_ROOT, Node, fail, version_of

KUBECTL = "/usr/bin/kubectl"
REAL_SUDO = "/usr/bin/sudo"
REAL_HOSTNAME = "/usr/bin/hostname"
REAL_UNAME = "/usr/bin/uname"
KUBEADM_FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
READ_ONLY_VERBS = ("is-active", "is-enabled", "status", "show", "cat", "list-units")
# `containerd config default` of containerd 1.7, reduced to the parts kubeadm hosts care about:
# the CRI plugin's sandbox image (containerd's own pause default, not kubeadm's) and runc's
# cgroup driver (cgroupfs unless told; kubeadm's kubelet wants systemd).
CONTAINERD_DEFAULT = """disabled_plugins = []
imports = []
oom_score = 0
root = "/var/lib/containerd"
state = "/run/containerd"
version = 2

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    enable_selinux = false
    max_container_log_line_size = 16384
    sandbox_image = "registry.k8s.io/pause:3.8"

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      snapshotter = "overlayfs"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            BinaryName = ""
            SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""
"""
PKGS_KEY = (
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n(pkgs.k8s.io signing key 234654DA9A296436)\n"
    "-----END PGP PUBLIC KEY BLOCK-----\n"
)
# pkgs.k8s.io's signing keys, as the kubeadm install guide fetches them (one per repository).
KEY_URL = re.compile(
    r"^https://pkgs\.k8s\.io/core:/stable:/v1\.\d+/(deb/Release\.key|rpm/repodata/repomd\.xml\.key)$"
)


def run(node: Node, command: str, args: list[str]) -> int:
    handlers = {
        "systemctl": systemctl,
        "swapoff": swapoff,
        "modprobe": modprobe,
        "sysctl": sysctl,
        "kubelet": kubelet,
        "kubectl": kubectl,
        "containerd": containerd,
        "sudo": sudo,
        "curl": curl,
        "gpg": gpg,
        "hostname": hostname,
        "uname": uname,
    }
    return handlers[command](node, args)


def systemctl(node: Node, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if not words:
        return fail("systemctl: no operation given")
    verb, units = words[0], [u.removesuffix(".service") for u in words[1:]]
    if verb not in READ_ONLY_VERBS and not node.privileged():
        # Without polkit rules, only root may manage system units.
        unit = f"{units[0]}.service" if units else ""
        what = "reload daemon" if verb == "daemon-reload" else f"{verb} {unit}"
        return fail(f"Failed to {what}: Access denied", 4)
    if verb == "daemon-reload":
        with node.state() as state:
            state["unit_changed"] = False
        return 0
    if verb in ("restart", "start", "try-restart", "reload-or-restart") and "kubelet" in units:
        return _start_kubelet(node)
    if verb == "stop" and "kubelet" in units:
        with node.state() as state:
            state["kubelet"]["active"] = False
        return 0
    if verb in ("restart", "start") and "containerd" in units:
        config = node.host_path("/etc/containerd/config.toml")
        text = _read(config) if os.path.exists(config) else ""
        sandbox = re.search(r'^\s*sandbox_image\s*=\s*"([^"]*)"', text, re.MULTILINE)
        with node.state() as state:
            state["containerd"] = {
                "systemd_cgroup": re.search(r"^\s*SystemdCgroup\s*=\s*true", text, re.MULTILINE)
                is not None,
                "sandbox_image": sandbox[1] if sandbox else "registry.k8s.io/pause:3.8",
            }
        return 0
    if verb == "enable" and "--now" in args and "kubelet" in units:
        return _start_kubelet(node)
    if verb == "is-active":
        active = node.read_state()["kubelet"]["active"] if "kubelet" in units else True
        print("active" if active else "inactive")
        return 0 if active else 3
    return 0


def _start_kubelet(node: Node) -> int:
    """systemd starts the unit and returns (kubelet.service is Type=simple); the kubelet then
    reports its node NotReady for a few seconds (see testbed.apiserver.kubelets)."""
    with node.state() as state:
        installed = version_of(state["packages"].get("kubelet"))
        if installed is None:
            return fail("Failed to restart kubelet.service: Unit kubelet.service not found.", 5)
        if state["unit_changed"]:
            print(
                "Warning: The unit file, source configuration file or drop-ins of kubelet.service "
                "changed on disk. Run 'systemctl daemon-reload' to reload units.",
                file=sys.stderr,
            )
        state["kubelet"] = {"active": True, "version": installed}
        joined = state["joined"]
        name = state.get("node_name") or node.name  # the name it joined under
    if joined and not node.control("/kubelet-started", {"node": name, "version": installed}):
        info = {"kubeletVersion": installed, "kubeProxyVersion": installed}
        node.api("PATCH", f"/api/v1/nodes/{name}/status", {"status": {"nodeInfo": info}}, True)
    return 0


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


def swapoff(node: Node, args: list[str]) -> int:
    if not node.privileged():
        return fail("swapoff: /swapfile: swapoff failed: Operation not permitted")
    if "-a" in args or "--all" in args:
        with node.state() as state:
            state["swap"] = False
    return 0


def modprobe(node: Node, args: list[str]) -> int:
    names = [a for a in args if not a.startswith("-")]
    if names and not node.privileged():
        return fail(f"modprobe: ERROR: could not insert '{names[0]}': Operation not permitted")
    with node.state() as state:
        state["modules"] = sorted(set(state["modules"]) | set(names))
    return 0


def _apply(node: Node, settings: dict[str, str]) -> int:
    if settings and not node.privileged():
        return fail(f'sysctl: permission denied on key "{next(iter(settings))}"', 255)
    with node.state() as state:
        for key, value in settings.items():
            if key.startswith("net.bridge.") and "br_netfilter" not in state["modules"]:
                return fail(
                    f"sysctl: cannot stat /proc/sys/{key.replace('.', '/')}: No such file or directory",
                    255,
                )
            state["sysctl"][key] = value
            print(f"{key} = {value}")
    return 0


def sysctl(node: Node, args: list[str]) -> int:
    if "--system" in args or "-p" in args:
        settings: dict[str, str] = {}
        for path in sorted(glob.glob(node.host_path("/etc/sysctl.d") + "/*.conf")):
            for line in _read(path).splitlines():
                if "=" in line and not line.lstrip().startswith(("#", ";")):
                    key, value = line.split("=", 1)
                    settings[key.strip()] = value.strip()
        return _apply(node, settings)
    assignments = [a for a in args if "=" in a and not a.startswith("-")]
    if assignments:
        return _apply(node, dict(a.split("=", 1) for a in assignments))
    current = node.read_state()["sysctl"]
    for key in (a for a in args if not a.startswith("-")):
        print(f"{key} = {current.get(key, '0')}")
    return 0


def kubelet(node: Node, args: list[str]) -> int:
    installed = version_of(node.read_state()["packages"].get("kubelet"))
    if installed is None:
        return fail("sh: 1: kubelet: not found", 127)
    if "--version" in args:
        print(f"Kubernetes {installed}")
    return 0


def kubectl(node: Node, args: list[str]) -> int:
    """The real kubectl, with the node's own kubeconfig files."""
    mapped = [
        "--kubeconfig=" + node.host_path(a.split("=", 1)[1]) if a.startswith("--kubeconfig=") else a
        for a in args
    ]
    env = dict(os.environ)
    if "KUBECONFIG" in env:
        env["KUBECONFIG"] = node.host_path(env["KUBECONFIG"])
    elif os.path.exists(node.host_path("/etc/kubernetes/admin.conf")):
        env["KUBECONFIG"] = node.host_path("/etc/kubernetes/admin.conf")
    os.execve(KUBECTL, [KUBECTL, *mapped], env)


def containerd(node: Node, args: list[str]) -> int:
    if args[:2] == ["config", "default"]:
        sys.stdout.write(CONTAINERD_DEFAULT)
    elif "--version" in args or args[:1] == ["version"]:
        print("containerd containerd.io 1.7.22 7f7fdf5fed64eb6a7caf99b3e12efcf9d60e311c")
    return 0


def sudo(node: Node, args: list[str]) -> int:
    """The real sudo when the node has it (its sshd runs in a mount namespace, with a sudoers
    rule for the fleet account); else a stand-in that runs the command as the login user,
    marked as root's for the other shims."""
    if node.has_real_sudo():
        os.execv(REAL_SUDO, ["sudo", *args])
    index = 0
    while index < len(args) and args[index].startswith("-"):
        if args[index] == "--":
            index += 1
            break
        index += 2 if args[index] in ("-u", "-g", "-C", "-D", "-h", "-p") else 1
    command = args[index:]
    while command and "=" in command[0] and not command[0].startswith("/"):
        key, value = command.pop(0).split("=", 1)  # sudo VAR=value command
        os.environ[key] = value
    if not command:
        return fail("usage: sudo [-n] command")
    os.environ[SIMULATED_ROOT] = "1"
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        return fail(f"sudo: {command[0]}: command not found")


def curl(_node: Node, args: list[str]) -> int:
    """The testbed has no internet: only pkgs.k8s.io's signing keys answer."""
    urls = [a for a in args if a.startswith(("http://", "https://"))]
    if not urls:
        return fail("curl: no URL specified!", 2)
    if not KEY_URL.match(urls[0]):
        host = urls[0].split("/")[2]
        return fail(f"curl: (6) Could not resolve host: {host}", 6)
    sys.stdout.write(PKGS_KEY)
    return 0


def gpg(node: Node, args: list[str]) -> int:
    """`gpg --dearmor -o FILE`: stdin's armored key to a binary keyring; gpg asks before
    overwriting (and fails without a terminal) unless --batch --yes."""
    if "--dearmor" not in args:
        return fail("gpg: only --dearmor is available on this host", 2)
    output = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-o", "--output")), None)
    armored = sys.stdin.read()
    if "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
        return fail("gpg: no valid OpenPGP data found.", 2)
    if output is None:
        sys.stdout.write(armored)
        return 0
    path = node.host_path(output)
    if os.path.exists(path) and not ("--yes" in args and "--batch" in args):
        return fail(
            f"File '{output}' exists. Overwrite? (y/N) gpg: Sorry, no terminal at all "
            "requested - can't get input",
            2,
        )
    if not node.privileged() and not os.access(os.path.dirname(path), os.W_OK):
        return fail(f"gpg: can't create '{output}': Permission denied", 2)
    with open(path, "w") as file:
        file.write(armored.replace("PGP PUBLIC KEY BLOCK", "keyring (dearmored)"))
    return 0


def hostname(node: Node, args: list[str]) -> int:
    """The host's own name: a new machine's is its provider's (ip-10-0-0-9), not the Node name
    it will register under. In its own UTS namespace the node has a real one; without
    namespaces (sessions with real sudo run in the node's own) the shim answers for it."""
    if node.has_real_sudo():
        os.execv(REAL_HOSTNAME, ["hostname", *args])
    if [a for a in args if not a.startswith("-")]:
        return fail("hostname: you must be root to change the host name")
    print(host_name(node))
    return 0


def uname(node: Node, args: list[str]) -> int:
    """Installed only where the node has no UTS namespace (see layout): its node name is the
    host's it stands in for; everything else is the machine's."""
    if args in (["-n"], ["--nodename"]):
        print(host_name(node))
        return 0
    os.execv(REAL_UNAME, ["uname", *args])


def host_name(node: Node) -> str:
    if node.has_real_sudo():
        return os.uname().nodename
    return str(node.config.get("hostname") or node.name)


def kubeadm_flags(node_name: str, host_name: str) -> str:
    """/var/lib/kubelet/kubeadm-flags.env as kubeadm init/join write it: --hostname-override only
    when the Node's name is not the host's (kubeadm #846, cmd/kubeadm/app/phases/kubelet/
    flags.go: `if nodeName != hostname`), so the kubelet registers under the Node's name."""
    flags = ["--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"]
    if node_name != host_name.lower():
        flags.append(f"--hostname-override={node_name}")
    return f'KUBELET_KUBEADM_ARGS="{" ".join(flags)}"\n'


def write_kubeadm_flags(path: str, node_name: str, host_name: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        file.write(kubeadm_flags(node_name, host_name))
