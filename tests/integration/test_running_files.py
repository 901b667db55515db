"""The running file kubegate keeps around a long remote command, on real sshd + sudo nodes: the
command's output and exit status pass through untouched; a command whose SSH client died runs
on (as on a real host) and is found by the leftover check until it ends; a hung command ends
with its host."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import asyncssh
import pytest

from playbooks.remote import LEFTOVER, TRACKED, running_file
from playbooks.ssh import command_line
from testbed.apiserver import FakeApiServer
from testbed.fleet import Fleet

from .fleet_helpers import fleet_nodes

FILE = running_file(3, "kubeadm-upgrade")


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    apiserver = FakeApiServer(workdir=tmp_path / "apiserver", heartbeat_interval=0.5)
    await apiserver.start()
    machines = Fleet(tmp_path / "fleet", fleet_nodes(apiserver), apiserver)
    await machines.start()
    try:
        yield machines
    finally:
        await machines.stop()
        await apiserver.stop()


async def connect(fleet: Fleet, node: str) -> asyncssh.SSHClientConnection:
    target = fleet.nodes[node]
    return await asyncssh.connect(
        target.address,
        target.port,
        username=fleet.user,
        client_keys=[str(fleet.client_key_path)],
        known_hosts=str(fleet.known_hosts_path),
    )


def tracked(*argv: str) -> str:
    wrapped = ("sh", "-c", TRACKED, "kubegate-running", FILE, shlex.join(argv), *argv)
    return command_line(wrapped, sudo=True)


async def leftover(fleet: Fleet, node: str) -> str:
    async with await connect(fleet, node) as connection:
        checked = await connection.run(command_line(("sh", "-c", LEFTOVER, "sh", FILE), sudo=True))
    return str(checked.stdout).strip()


def shim_pids(fleet: Fleet, node: str, argv: Sequence[str]) -> list[int]:
    """The pids of the node's shims that ran a command starting with `argv` (its call log)."""
    log = fleet.nodes[node].state_dir / "calls.jsonl"
    calls = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [int(c["pid"]) for c in calls if c["argv"][: len(argv)] == list(argv)]


def under_an_ssh_session(pid: int) -> bool:
    """Whether an sshd process is among the ancestors of `pid` (not yet reparented)."""
    while pid > 1:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            return False
        if title.startswith(b"sshd"):
            return True
    return False


async def until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def until_answer(fleet: Fleet, node: str, wanted: str, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while await leftover(fleet, node) != wanted:
            await asyncio.sleep(0.2)


async def test_a_tracked_command_keeps_its_output_and_exit_status_and_leaves_no_file(
    fleet: Fleet,
) -> None:
    async with await connect(fleet, "worker-1") as connection:
        ran = await connection.run(tracked("sh", "-c", "echo out; echo err >&2; exit 7"))
        version = await connection.run(tracked("kubeadm", "version", "-o", "short"))
    assert (ran.exit_status, ran.stdout, ran.stderr) == (7, "out\n", "err\n")
    assert (version.exit_status, str(version.stdout).strip()) == (0, "v1.31.2")
    assert await leftover(fleet, "worker-1") == "none"


async def test_a_command_outlives_its_killed_client_and_the_check_sees_it_until_it_ends(
    fleet: Fleet,
) -> None:
    fleet.hang("cp-1", "kubeadm upgrade apply")
    connection = await connect(fleet, "cp-1")
    await connection.create_process(tracked("kubeadm", "upgrade", "apply", "v1.31.3", "--yes"))
    apply = ["kubeadm", "upgrade", "apply"]
    await until(lambda: bool(shim_pids(fleet, "cp-1", apply)), timeout=20)
    connection.abort()  # the client dies without a word, as kubegate under kill -9

    await asyncio.sleep(1)  # a span in which the command must not die with its session
    running = await leftover(fleet, "cp-1")
    assert running.startswith("running ") and running.endswith(
        "kubeadm upgrade apply v1.31.3 --yes"
    )
    fleet.clear_faults("cp-1")
    await until_answer(fleet, "cp-1", "none")  # it ended, and its file with it
    assert len(shim_pids(fleet, "cp-1", apply)) == 1


async def test_a_hung_command_ends_with_its_host(fleet: Fleet) -> None:
    fleet.hang("worker-1", "systemctl restart")
    connection = await connect(fleet, "worker-1")
    await connection.create_process(tracked("systemctl", "restart", "kubelet"))
    await until(lambda: bool(shim_pids(fleet, "worker-1", ["systemctl", "restart"])), timeout=20)
    connection.abort()
    pid = shim_pids(fleet, "worker-1", ["systemctl", "restart"])[0]
    await until(lambda: not under_an_ssh_session(pid), timeout=20)  # orphaned, running on

    await fleet.kill_sshd("worker-1")  # the host is gone: nothing of it may linger
    await until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=10)
