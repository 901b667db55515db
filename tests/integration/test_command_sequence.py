"""A step's commands go to the node as one sequence (playbooks/remote.py SEQUENCE), run by the
node's real /bin/sh: in order, stopping at the first failure, which the thread names with its
own output; the running file tracks each command; a stop ends the sequence."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from playbooks.base import StepResult
from playbooks.remote import LEFTOVER, Remote, RemoteCommand
from playbooks.ssh import CommandResult, SshTarget

TARGET = SshTarget(node="worker-3", host="127.0.0.1")


class LocalShell:
    """The node's shell as a subprocess here: the argv exactly as sshd would hand it to sh."""

    def __init__(self) -> None:
        self.started: list[asyncio.subprocess.Process] = []

    async def run(
        self, target: SshTarget, argv: Sequence[str], *, timeout: float = 600, on_output=None
    ) -> CommandResult:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        self.started.append(process)
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode is not None
        return CommandResult(
            target.node, argv[0], process.returncode, out.decode(), err.decode(), 0
        )


def remote(shell: LocalShell) -> Remote:
    return Remote(shell, TARGET, timeout=30)  # type: ignore[arg-type]


async def test_commands_run_in_order_and_hostile_words_stay_words(tmp_path: Path) -> None:
    log = tmp_path / "log"
    hostile = 'it\'s; $(touch pwned) `touch pwned` "${HOME}"'
    commands = [
        RemoteCommand.script("first", 'printf "%s\\n" "$1" >> "$2"', "one", str(log)),
        RemoteCommand.of("sh", "-c", 'printf "%s\\n" "$0" >> "$1"', hostile, str(log)),
        RemoteCommand.script("third", 'printf "%s\\n" three >> "$1"', str(log)),
    ]
    ran = await remote(LocalShell()).run_in_order(commands)
    assert ran == [command.label for command in commands]
    assert log.read_text().splitlines() == ["one", hostile, "three"]
    assert not (Path.cwd() / "pwned").exists()


async def test_the_first_failure_stops_the_rest_and_is_named_with_its_own_output(
    tmp_path: Path,
) -> None:
    later = tmp_path / "later"
    commands = [
        RemoteCommand.script("apt-get update", "echo fetched 12 lists; echo note >&2"),
        RemoteCommand.script(
            "apt-get install -y kubeadm=1.32.0-*",
            "echo 'Reading package lists...'; echo 'E: Version 1.32.0 was not found' >&2; exit 100",
        ),
        RemoteCommand.script("apt-mark hold kubeadm", 'touch "$1"', str(later)),
    ]
    result = await remote(LocalShell()).run_in_order(commands)
    assert isinstance(result, StepResult) and not result.ok
    assert result.summary == "`apt-get install -y kubeadm=1.32.0-*` failed on worker-3 (exit 100)"
    shown = [line for line in result.output.splitlines() if line]  # only this command's output
    assert shown == ["Reading package lists...", "E: Version 1.32.0 was not found"]
    assert not later.exists()


async def test_each_command_has_the_running_file_while_it_runs_and_none_after(
    tmp_path: Path,
) -> None:
    running = str(tmp_path / "running" / "job-7.packages")
    gate = tmp_path / "gate"
    commands = [
        RemoteCommand.of("true"),
        RemoteCommand.script(
            "wait for the gate", 'while [ ! -e "$1" ]; do sleep 0.02; done', str(gate)
        ),
        RemoteCommand.of("true"),
    ]
    shell = LocalShell()
    task = asyncio.create_task(remote(shell).run_in_order(commands, running=running))
    answer = ""
    async with asyncio.timeout(10):
        while not answer.startswith("running"):
            answer = await leftover(running)
            await asyncio.sleep(0.02)
    assert answer.endswith(" wait for the gate")
    gate.touch()
    assert await asyncio.wait_for(task, 10) == [command.label for command in commands]
    assert await leftover(running) == "none"


async def test_a_stop_ends_the_running_command_and_nothing_after_it_starts(tmp_path: Path) -> None:
    later = tmp_path / "later"
    running = str(tmp_path / "running" / "job-7.upgrade")
    commands = [
        RemoteCommand.of("sleep", "30"),
        RemoteCommand.script("touch later", 'touch "$1"', str(later)),
    ]
    shell = LocalShell()
    task = asyncio.create_task(remote(shell).run_in_order(commands, running=running))
    async with asyncio.timeout(10):
        while not (await leftover(running)).startswith("running"):
            await asyncio.sleep(0.02)
    shell.started[0].send_signal(signal.SIGTERM)  # what sudo relays of a cancel
    result = await asyncio.wait_for(task, 10)
    assert isinstance(result, StepResult) and "`sleep 30` failed" in result.summary
    assert "(exit 143)" in result.summary
    assert not later.exists()
    assert await leftover(running) == "none"


async def leftover(running: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", LEFTOVER, "sh", running, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return out.decode().strip()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert os.access(tmp_path, os.W_OK)
