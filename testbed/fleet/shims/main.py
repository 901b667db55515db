"""Entry of every shim: record the call, obey a fault switch, then act like the real command."""

from __future__ import annotations

import importlib
import os
import select
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
    """Block while the fault stays set, as a real command stuck on the host would.

    Like a real command it outlives its SSH session: without a pty (kubegate asks for none)
    sshd sends it no SIGHUP when the client goes away, it only closes the pipes and exits, and
    the command runs on, reparented (OpenSSH session.c: SIGHUP reaches a session's processes
    only through its pty's hangup; `session_close_by_channel` leaves a running child be).
    It ends with its host: when the node's sshd itself is gone (the testbed stopped, or
    `sshd-down`, which models a crashed host), so no hung shim outlives its test.
    """
    host = _node_sshd()
    while key in node.faults():
        if not os.path.isdir(node.state_dir) or (host is not None and not _alive(host)):
            raise SystemExit(137)
        time.sleep(0.05)
    _drop_output_nobody_reads()


def _node_sshd() -> int | None:
    """The listening sshd this session came through (`sshd -D …`, the node's "host"). OpenSSH
    9 retitles it "sshd: /usr/sbin/sshd -D … [listener] …"; its sessions' titles ("sshd:
    user [priv]", "sshd: user@notty") carry no -D."""
    pid = os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                words = file.read().replace(b"\0", b" ").split()
            with open(f"/proc/{pid}/stat") as file:
                parent = int(file.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        if any(os.path.basename(w) == b"sshd" for w in words) and b"-D" in words:
            return pid
        pid = parent
    return None


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _drop_output_nobody_reads() -> None:
    """Once the session is gone nobody reads our stdout/stderr: a real kubeadm's writes then
    fail with EPIPE and it goes on (sshd leaves SIGPIPE ignored, and Go only dies of SIGPIPE
    when it is not ignored); Python would raise instead, so the output goes to /dev/null."""
    poller = select.poll()
    for fd in (1, 2):
        poller.register(fd, 0)
    broken = {fd for fd, events in poller.poll(0) if events & (select.POLLERR | select.POLLHUP)}
    if broken:
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in broken:
            os.dup2(null, fd)
        os.close(null)


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
