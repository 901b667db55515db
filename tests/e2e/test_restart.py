"""A job running when kubegate is killed is never silently lost: INTERRUPTED, then Resume."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from testbed.up import Testbed
from tests.e2e.slack_steps import (
    click,
    kubegate_cli,
    request,
    unschedulable,
    wait_reply,
    wait_text,
)

Launch = Callable[[], "asyncio.Future[subprocess.Popen[bytes]]"]


# Below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default):
# a port the kernel hands out for bind(0) may meanwhile become the local port of any outgoing
# connection of a parallel test, and `kubegate serve` then fails "address already in use".
PORTS_OUTSIDE_EPHEMERAL = range(20000, 32768)


def free_port(address: str = "0.0.0.0") -> int:
    """A port free at `address` that stays free until bound much later (kubegate serve's, kept
    across restarts; a control plane's API server joined mid-test)."""
    for port in random.sample(PORTS_OUTSIDE_EPHEMERAL, 50):
        with socket.socket() as sock:
            try:
                sock.bind((address, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32767")


async def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def job_state(db: Path, job_id: int) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()
    return row[0] if row else None


class KubegateProcess:
    """`kubegate serve` as its own process, as in production, so it can be killed."""

    def __init__(self, testbed: Testbed, db: Path, log: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "KUBEGATE_CONFIG": str(testbed.config_path),
            "KUBEGATE_DB": str(db),
            "KUBEGATE_PORT": str(self.port),
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        testbed.slack.app_url = f"http://127.0.0.1:{self.port}/slack/events"

    async def start(self) -> None:
        kubegate = str(Path(sys.executable).parent / "kubegate")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [kubegate, "serve"], env=self.env, stdout=out, stderr=out
            )
        async with aiohttp.ClientSession() as session, asyncio.timeout(20):
            while True:
                assert self.process.poll() is None, self.log.read_text()
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=10)


@pytest.fixture
async def kubegate_process(testbed: Testbed, tmp_path: Path) -> AsyncIterator[KubegateProcess]:
    served = KubegateProcess(testbed, tmp_path / "kubegate.db", tmp_path / "kubegate.log")
    try:
        yield served
    finally:
        if served.process and served.process.poll() is None:
            served.kill(signal.SIGTERM)


async def test_a_job_killed_mid_run_is_shown_interrupted_and_can_be_resumed(
    testbed: Testbed, kubegate_process: KubegateProcess, tmp_path: Path
) -> None:
    db = tmp_path / "kubegate.db"
    await kubegate_process.start()
    root = await request(testbed, "U0ALICE", "cordon worker-2")
    testbed.apiserver.hang = True  # the job will be stuck talking to the cluster
    await click(testbed, "U0BOB", root, "Approve")
    await until(lambda: job_state(db, 1) == "RUNNING")
    kubegate_process.kill()
    testbed.apiserver.hang = False

    await kubegate_process.start()
    note = await wait_reply(testbed, root, "was interrupted")
    assert "[Resume]" in note.shown and "[Abort]" in note.shown
    await wait_text(testbed, root.ts, "INTERRUPTED")

    await click(testbed, "U0ALICE", note, "Resume")
    await wait_text(testbed, root.ts, "SUCCEEDED")
    assert await unschedulable(testbed, "worker-2") == "true"
    assert kubegate_cli(db, "audit", "verify").returncode == 0
    assert "job.interrupted" in kubegate_cli(db, "audit", "export").stdout


async def test_a_scheduled_job_survives_a_restart_and_runs_at_its_time(
    testbed: Testbed, kubegate_process: KubegateProcess, tmp_path: Path
) -> None:
    db = tmp_path / "kubegate.db"
    await kubegate_process.start()
    at = (datetime.now(UTC) + timedelta(seconds=20)).replace(
        microsecond=0
    )  # room for a loaded machine
    root = await request(testbed, "U0ALICE", f"cordon worker-3 --at {at:%Y-%m-%dT%H:%M:%SZ}")
    await click(testbed, "U0BOB", root, "Approve")
    scheduled = await wait_text(testbed, root.ts, "Scheduled for")
    assert "SCHEDULED" in scheduled.shown and job_state(db, 1) == "SCHEDULED"
    kubegate_process.kill()
    assert await unschedulable(testbed, "worker-3") != "true"

    await kubegate_process.start()
    assert job_state(db, 1) == "SCHEDULED"
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=40)
    assert await unschedulable(testbed, "worker-3") == "true"
    assert datetime.now(UTC) >= at
