"""etcdctl on a node: a kubeadm host has none on its PATH (etcd and its tools live in the etcd
static pod's image; kubeadm installs only kubeadm, kubelet and kubectl:
kubernetes.io/docs/setup/production-environment/tools/kubeadm/install-kubeadm), so the command
is not found. `map_args` maps kubeadm's https://127.0.0.1:2379 and the node's own paths for the
crictl shim, which runs the etcd image's etcdctl."""

from __future__ import annotations

from testbed.fleet.shims.nodestate import Node, fail

PATH_FLAGS = ("--cacert", "--cert", "--key")


def _endpoints(node: Node, value: str) -> str:
    real = node.config.get("etcd_endpoint")
    if not real:
        return value
    local = ("https://127.0.0.1:2379", "127.0.0.1:2379", "https://localhost:2379", "localhost:2379")
    return ",".join(real if e in local else e for e in value.split(","))


def map_args(node: Node, args: list[str]) -> list[str]:
    mapped: list[str] = []
    pending: str | None = None
    for arg in args:
        if pending is not None:
            mapped.append(
                _endpoints(node, arg) if pending == "--endpoints" else node.host_path(arg)
            )
            pending = None
            continue
        name, has_value, value = arg.partition("=")
        if name == "--endpoints" and has_value:
            mapped.append(f"{name}={_endpoints(node, value)}")
        elif has_value and name.startswith("--") and value.startswith("/"):
            mapped.append(f"{name}={node.host_path(value)}")  # --cacert=, --data-dir=, …
        elif arg in (*PATH_FLAGS, "--endpoints"):
            mapped.append(arg)
            pending = arg
        else:
            mapped.append(node.host_path(arg))  # snapshot files under /var/lib/...
    return mapped


def run(node: Node, _command: str, args: list[str]) -> int:
    # sudo, env and sh all say so and exit 127 (sudo: 1) when the program is not on the PATH.
    return fail("sh: 1: etcdctl: not found", 127)
