"""Entry of every shim: record the call, obey a fault switch, then act like the real command."""

from __future__ import annotations

import importlib
import os
import sys
import time

from testbed.fleet.shims.nodestate import Node

HANDLERS = {
    "kubeadm": "kubeadm",
    "apt-get": "packages",
    "apt-mark": "packages",
    "dnf": "packages",
    "systemctl": "system",
    "swapoff": "system",
    "modprobe": "system",
    "sysctl": "system",
    "kubelet": "system",
    "kubectl": "system",
    "containerd": "system",
    "sudo": "system",
    "curl": "system",
    "gpg": "system",
    "hostname": "system",
    "uname": "system",
    "etcdctl": "etcdctl",
    "crictl": "crictl",
    "mv": "staticpods",
}


def hang(node: Node, key: str) -> None:
    """Block while the fault stays set; leave when our session is gone (sshd killed or the
    client hung up), so no hung shim outlives its test."""
    parent = os.getppid()
    while key in node.faults() and os.getppid() == parent:
        if not os.path.isdir(node.state_dir):
            raise SystemExit(1)
        time.sleep(0.05)
    if os.getppid() != parent:
        raise SystemExit(129)


def main(argv: list[str]) -> int:
    command = os.path.basename(argv[0])
    node = Node()
    call = [command, *argv[1:]]
    node.record(call)
    matched = node.take_fault(call)
    if matched is not None:
        key, fault = matched
        if fault["action"] == "fail":
            if fault.get("stderr"):
                sys.stderr.write(fault["stderr"].rstrip("\n") + "\n")
            return int(fault.get("exit_code", 1))
        hang(node, key)
    module = importlib.import_module(f"testbed.fleet.shims.{HANDLERS[command]}")
    code: int = module.run(node, command, argv[1:])
    sys.stdout.flush()
    return code
