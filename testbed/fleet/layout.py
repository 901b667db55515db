"""Where a fleet keeps things on disk, and the first state of each node's directory: what the
shims read (config.json), change (state.json), append to (calls.jsonl) and obey (faults.json).

On a node, /etc/kubernetes, /var/lib/kubegate, /etc/fstab, /etc/containerd, /etc/sysctl.d and
/etc/modules-load.d are the node's own `<state_dir>/root/...` (bind mounts in sshd's mount
namespace, and the same mapping inside the shims when namespaces are unavailable).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from testbed.fleet.account import Account
from testbed.fleet.shims import pki
from testbed.fleet.shims.nodestate import NODE_PATHS as NODE_PATHS  # the layout mounts them
from testbed.fleet.shims.packages import write_sources
from testbed.fleet.shims.system import CONTAINERD_DEFAULT, KUBEADM_FLAGS, write_kubeadm_flags
from testbed.fleet.sshd import can_use_mount_namespaces

SHIM_COMMANDS = (
    "kubeadm",
    "kubelet",
    "kubectl",
    "apt-get",
    "apt-mark",
    "dnf",
    "systemctl",
    "swapoff",
    "modprobe",
    "sysctl",
    "etcdctl",
    "crictl",
    "sudo",
    "containerd",
    "mv",
    "curl",
    "gpg",
    "hostname",
)
SHIM_SOURCES = Path(__file__).parent / "shims"
DAY = 86400.0
LEAF_CERTS = (
    *(("admin.conf", "ca"), ("apiserver", "ca"), ("apiserver-etcd-client", "etcd-ca")),
    *(("apiserver-kubelet-client", "ca"), ("controller-manager.conf", "ca")),
    *(("etcd-healthcheck-client", "etcd-ca"), ("etcd-peer", "etcd-ca")),
    *(("etcd-server", "etcd-ca"), ("front-proxy-client", "front-proxy-ca")),
    *(("scheduler.conf", "ca"), ("super-admin.conf", "ca")),
)
# A bare host's containerd config: the distribution's default plus one setting its operator
# added (registry mirrors under certs.d, containerd's hosts.toml layout) that must survive.
OPERATOR_SETTING = 'config_path = "/etc/containerd/certs.d"'
BARE_CONTAINERD = CONTAINERD_DEFAULT.replace('config_path = ""', OPERATOR_SETTING)
# The sandbox image kubeadm v1.31 expects (cmd/kubeadm/app/constants: PauseVersion).
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
STATIC_PODS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The etcd image kubeadm v1.31 deploys (cmd/kubeadm/app/constants: SupportedEtcdVersion).
ETCD_IMAGE = "registry.k8s.io/etcd:3.5.15-0"


def reachable_by(path: Path, account: Account) -> bool:
    """Whether `account` may traverse every directory from / down to `path`."""
    for directory in [path, *path.parents]:
        info = directory.stat()
        if info.st_uid == account.uid:
            allowed = bool(info.st_mode & stat.S_IXUSR)
        elif info.st_gid == account.gid:
            allowed = bool(info.st_mode & stat.S_IXGRP)
        else:
            allowed = bool(info.st_mode & stat.S_IXOTH)
        if not allowed:
            return False
    return True


def public_root(workdir: Path, account: Account) -> tuple[Path, bool]:
    """The directory the fleet account can reach; (path, True) when it is a fresh temp dir that
    the fleet must remove (pytest's tmp dirs are 0700 root, closed to the fleet account)."""
    if reachable_by(workdir, account):
        path = workdir / "public"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
        return path, False
    path = Path(tempfile.mkdtemp(prefix="kubegate-fleet-", dir="/tmp"))
    path.chmod(0o755)
    link = workdir / "public"
    link.unlink(missing_ok=True)
    link.symlink_to(path)
    return path, True


def install_shims(public: Path) -> Path:
    """Copy the shim package where the fleet account can read it; returns the shim launcher."""
    library = public / "lib" / "testbed" / "fleet" / "shims"
    library.mkdir(parents=True, exist_ok=True)
    for package in (public / "lib" / "testbed", public / "lib" / "testbed" / "fleet"):
        (package / "__init__.py").write_text("")
    for source in SHIM_SOURCES.glob("*.py"):
        shutil.copyfile(source, library / source.name)
    launcher = public / "bin" / "shim"
    launcher.parent.mkdir(exist_ok=True)
    # -S -I: no site, no user dirs, no env: a lean ~20 ms start on every shimmed command.
    launcher.write_text(
        "#!/usr/bin/python3 -SI\n"
        "import sys\n"
        f"sys.path.insert(0, {str(public / 'lib')!r})\n"
        "from testbed.fleet.shims.main import main\n"
        "sys.exit(main(sys.argv))\n"
    )
    launcher.chmod(0o755)
    for path in [launcher, *library.parent.parent.parent.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path == launcher else 0o644)
    return launcher


def package_version(kubelet_version: str) -> str:
    """`v1.31.2` -> `1.31.2-1.1`, the revision pkgs.k8s.io gives its debs and rpms."""
    return kubelet_version.removeprefix("v") + "-1.1"


def initial_state(*, role: str, kubelet_version: str | None) -> dict[str, Any]:
    """A node already in the cluster is fully prepared; a new one is a bare host."""
    now = time.time()
    joined = kubelet_version is not None
    version = package_version(kubelet_version) if kubelet_version else None
    packages = dict.fromkeys(("kubeadm", "kubelet", "kubectl"), version) if version else {}
    return {
        "joined": joined,
        "role": role,
        "packages": packages,
        "held": sorted(packages),
        "unit_changed": False,
        "kubelet": {"active": joined, "version": kubelet_version},
        "swap": not joined,
        "modules": ["br_netfilter", "overlay"] if joined else [],
        "sysctl": {"net.bridge.bridge-nf-call-iptables": "1", "net.ipv4.ip_forward": "1"}
        if joined
        else {"net.ipv4.ip_forward": "0"},
        "containerd": {"systemd_cgroup": joined, "sandbox_image": PAUSE_IMAGE if joined else None},
        "certs": {name: now + 300 * DAY for name, _ in LEAF_CERTS}
        if joined and role == "control-plane"
        else {},
        "cas": dict.fromkeys(("ca", "etcd-ca", "front-proxy-ca"), now + 3600 * DAY),
        "cluster_version": kubelet_version,
    }


def _admin_kubeconfig(url: str, token: str, ca_pem: bytes) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubernetes",
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "kubernetes-admin", "user": {"token": token}}],
        "contexts": [
            {"name": "admin", "context": {"cluster": "kubernetes", "user": "kubernetes-admin"}}
        ],
        "current-context": "admin",
    }
    return json.dumps(config, indent=2)  # JSON is YAML: kubectl reads it


def static_pod_manifest(pod: str, version: str) -> str:
    """A static pod as kubeadm writes it, reduced to what the testbed reads: the image tag
    (the kubelet runs that version) and the local etcd endpoint the API server uses."""
    image = ETCD_IMAGE if pod == "etcd" else f"registry.k8s.io/{pod}:{version}"
    command = [pod]
    if pod == "kube-apiserver":
        command.append("--etcd-servers=https://127.0.0.1:2379")
    lines = [
        "apiVersion: v1",
        "kind: Pod",
        "metadata:",
        f"  name: {pod}",
        "  namespace: kube-system",
        "  labels:",
        f"    component: {pod}",
        "    tier: control-plane",
        "spec:",
        "  hostNetwork: true",
        "  priorityClassName: system-node-critical",
        "  containers:",
        f"  - name: {pod}",
        f"    image: {image}",
        "    command:",
        *(f"    - {word}" for word in command),
    ]
    return "\n".join(lines) + "\n"


def write_node_root(
    root: Path,
    *,
    node: str,
    role: str,
    joined: bool,
    apiserver: dict[str, Any] | None,
    bare: bool = False,
    version: str = "v1.31.2",
) -> None:
    """The node's own /etc and /var/lib pieces."""
    for path in NODE_PATHS[:-1]:
        (root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (root / "etc/kubernetes/pki/etcd").mkdir(parents=True, exist_ok=True)
    (root / "etc/kubernetes/manifests").mkdir(exist_ok=True)
    if bare:
        (root / "etc/containerd/config.toml").write_text(BARE_CONTAINERD)
        for empty in ("etc/apt/sources.list.d", "etc/apt/keyrings", "var/lib/apt/lists"):
            (root / empty).mkdir(parents=True, exist_ok=True)
    swap = "/swapfile none swap sw 0 0\n"
    (root / "etc/fstab").write_text("# /etc/fstab\n" + (f"# {swap}" if joined else swap))
    if apiserver is not None:
        ca_pem = Path(apiserver["ca"]).read_bytes()
        (root / "etc/kubernetes/pki/ca.crt").write_bytes(ca_pem)
        if joined:
            kubeconfig = _admin_kubeconfig(apiserver["url"], apiserver["token"], ca_pem)
            names = ["kubelet.conf"] + (["admin.conf"] if role == "control-plane" else [])
            for name in names:
                (root / "etc/kubernetes" / name).write_text(kubeconfig)
            authority = str(Path(apiserver["ca"]).with_suffix(""))
            pki.write_kubelet_client(str(root), node, authority)
            # The host is named as its Node, so kubeadm wrote no --hostname-override.
            write_kubeadm_flags(str(root / KUBEADM_FLAGS.lstrip("/")), node, node)
            if role == "control-plane":
                shared = str(Path(apiserver["ca"]).parent / "cluster-pki")
                pki.write_authorities(shared, ca=authority)
                pki.write_control_plane_pki(str(root), shared)
    if joined and role == "control-plane":
        for pod in STATIC_PODS:
            manifest = root / f"etc/kubernetes/manifests/{pod}.yaml"
            manifest.write_text(static_pod_manifest(pod, version))


def etc_hosts(hostname: str) -> str:
    """A machine's /etc/hosts names the machine itself, as Debian's installer writes it
    (127.0.1.1, Debian Reference, "The hostname resolution"): sudo resolves the host's name and
    warns "unable to resolve host" without it."""
    return (
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )


def chown_tree(path: Path, account: Account) -> None:
    if os.geteuid() != 0:
        return
    os.chown(path, account.uid, account.gid)
    for directory, subdirs, files in os.walk(path):
        for name in subdirs + files:
            os.chown(os.path.join(directory, name), account.uid, account.gid, follow_symlinks=False)


def prepare_node(
    state_dir: Path,
    *,
    config: dict[str, Any],
    kubelet_version: str | None,
    launcher: Path,
    account: Account,
) -> None:
    """A node's state directory, ready for its sshd and shims."""
    state_dir.mkdir(parents=True, exist_ok=True)
    role = str(config["role"])
    # A spare host of a world with an apiserver is a new machine (fleet-only tests keep
    # their hosts shaped for kubeadm).
    bare = kubelet_version is None and config["apiserver"] is not None
    if bare:
        # A new machine is named as its provider names it, not as kubegate will name its Node.
        config["hostname"] = "ip-" + str(config["address"]).replace(".", "-")
    (state_dir / "config.json").write_text(json.dumps(config, indent=2))
    (state_dir / "state.json").write_text(
        json.dumps(initial_state(role=role, kubelet_version=kubelet_version), indent=2)
    )
    (state_dir / "faults.json").write_text("{}")
    (state_dir / "calls.jsonl").write_text("")
    bin_dir = state_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    # Without namespaces the machine's host name is every node's: a `uname` shim answers for
    # the node (kubegate's identity probe reads `uname -n`).
    uts_stand_in = () if can_use_mount_namespaces() else ("uname",)
    for command in (*SHIM_COMMANDS, *uts_stand_in):
        link = bin_dir / command
        link.unlink(missing_ok=True)
        link.symlink_to(launcher)
    write_node_root(
        state_dir / "root",
        node=state_dir.name,
        role=role,
        joined=kubelet_version is not None,
        bare=bare,
        apiserver=config["apiserver"],
        version=kubelet_version or "v1.31.2",
    )
    hostname = str(config.get("hostname") or config["name"])
    (state_dir / "root/etc/hosts").write_text(etc_hosts(hostname))
    if not bare:  # a bare host has no Kubernetes package source yet
        cluster_version = config.get("kubernetes_version") or "v1.31.2"
        write_sources(str(state_dir / "root"), kubelet_version or cluster_version)
    if config["apiserver"] is not None:
        config["apiserver"]["ca"] = str(state_dir / "root/etc/kubernetes/pki/ca.crt")
        (state_dir / "config.json").write_text(json.dumps(config, indent=2))
    chown_tree(state_dir, account)
    (state_dir / "config.json").chmod(0o600)  # it holds the apiserver token
