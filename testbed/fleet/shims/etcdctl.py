"""etcdctl on a control-plane node: the real /usr/bin/etcdctl (API v3) against the testbed's
real etcd, with kubeadm's https://127.0.0.1:2379 and the node's own paths mapped."""

from __future__ import annotations

import os

from testbed.fleet.shims.nodestate import Node, fail

ETCDCTL = "/usr/bin/etcdctl"
PATH_FLAGS = ("--cacert", "--cert", "--key")
PATH_ENV = ("ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY")


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
        elif name in PATH_FLAGS and has_value:
            mapped.append(f"{name}={node.host_path(value)}")
        elif arg in (*PATH_FLAGS, "--endpoints"):
            mapped.append(arg)
            pending = arg
        else:
            mapped.append(node.host_path(arg))  # snapshot files under /var/lib/...
    return mapped


def run(node: Node, _command: str, args: list[str]) -> int:
    if not os.path.exists(ETCDCTL):
        return fail("sh: 1: etcdctl: not found", 127)
    env = dict(os.environ, ETCDCTL_API="3")
    for key in PATH_ENV:
        if key in env:
            env[key] = node.host_path(env[key])
    if "ETCDCTL_ENDPOINTS" in env:
        env["ETCDCTL_ENDPOINTS"] = _endpoints(node, env["ETCDCTL_ENDPOINTS"])
    os.execve(ETCDCTL, [ETCDCTL, *map_args(node, args)], env)
