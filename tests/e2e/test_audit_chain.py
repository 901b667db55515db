"""The audit log proves itself against someone holding the database file: a running
`kubegate serve`, driven by signed Slack requests, then tampered with as an attacker would."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from bot.anchors import AnchorFile, anchor_file_next_to
from bot.audit_keys import key_file_next_to
from bot.chain import GENESIS, UNKEYED, link_hash
from bot.private_files import sqlite_files
from testbed.up import Testbed
from tests.e2e.conftest import serving
from tests.e2e.slack_steps import (
    click,
    kubegate_cli,
    request,
    unschedulable,
    wait_text,
)

T = TypeVar("T")

TWO_APPROVALS = {
    "policy": [
        {
            "verbs": ["cordon"],
            "requesters": ["sre", "lead"],
            "approvals": 2,
            "approvers": ["sre", "lead"],
        }
    ]
}


class Siem:
    """A SIEM's two doors on loopback: a syslog UDP port and an HTTP collector."""

    def __init__(self) -> None:
        self.datagrams: list[str] = []
        self.posts: list[dict[str, Any]] = []
        self.syslog = ""
        self.url = ""

    async def receive(self, request: web.Request) -> web.Response:
        self.posts.append(await request.json())
        return web.Response(status=204)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, siem: Siem) -> None:
        self.siem = siem

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.siem.datagrams.append(data.decode())


@asynccontextmanager
async def siem() -> AsyncIterator[Siem]:
    listening = Siem()
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(
        lambda: _Udp(listening), local_addr=("127.0.0.1", 0)
    )
    app = web.Application()
    app.router.add_post("/anchors", listening.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    listening.syslog = "127.0.0.1:{}".format(udp.get_extra_info("sockname")[1])
    listening.url = f"http://127.0.0.1:{runner.addresses[0][1]}/anchors"
    try:
        yield listening
    finally:
        udp.close()
        await runner.cleanup()


async def eventually(condition: Callable[[], T | None], timeout: float = 10) -> T:
    """Poll a condition outside Slack's transcript (a file, a socket) until it holds."""
    deadline = time.monotonic() + timeout
    while (result := condition()) is None or result is False:
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return result


def attacker(db: Path) -> sqlite3.Connection:
    """Someone with the database file but not the key: drops the append-only triggers first."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_refuses_update")
    conn.execute("DROP TRIGGER audit_refuses_delete")
    return conn


async def cordon_approved_and_run(testbed: Testbed) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-2")
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED")


def chain_head(db: Path) -> tuple[int, str]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return int(row[0]), str(row[1])


async def test_a_job_end_is_anchored_in_the_file_and_at_the_siem_and_verify_passes(
    testbed: Testbed, tmp_path: Path
) -> None:
    async with siem() as collector:
        audit = {"audit": {"anchor_syslog": collector.syslog, "anchor_url": collector.url}}
        async with serving(testbed, tmp_path, audit) as served:
            await cordon_approved_and_run(testbed)
            anchors = AnchorFile(anchor_file_next_to(served.db))

            def succeeded_is_anchored() -> bool:
                with sqlite3.connect(served.db) as conn:
                    end = conn.execute(
                        "SELECT MAX(id) FROM audit WHERE action = 'job.state' "
                        "AND details LIKE '%SUCCEEDED%'"
                    ).fetchone()[0]
                newest = anchors.newest()
                return bool(end and newest and newest.seq >= end and collector.posts)

            await eventually(succeeded_is_anchored)
        newest = anchors.newest()
        assert newest is not None and (newest.seq, newest.hash) == chain_head(served.db)
        await eventually(lambda: collector.posts[-1]["seq"] == newest.seq or None)
        assert collector.posts[-1]["hash"] == newest.hash
        await eventually(lambda: any(f'"seq": {newest.seq}' in d for d in collector.datagrams))
        assert collector.datagrams[-1].startswith("<110>1 ")  # log audit, informational
    result = kubegate_cli(served.db, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "audit chain OK" in result.stdout and f"newest anchor (event {newest.seq}" in result.stdout
    )


async def test_deleting_the_last_events_of_a_served_chain_fails_verify(
    testbed: Testbed, tmp_path: Path
) -> None:
    async with serving(testbed, tmp_path, {}) as served:
        await cordon_approved_and_run(testbed)
    head, _ = chain_head(served.db)
    with attacker(served.db) as conn:
        conn.execute("DELETE FROM audit WHERE id > ?", [head - 3])
    result = kubegate_cli(served.db, "audit", "verify")
    assert result.returncode == 1
    assert f"the chain ends at event {head - 3}" in result.stdout
    assert f"events {head - 2}–{head} were deleted" in result.stdout


async def test_recomputing_a_served_chain_without_the_key_fails_verify(
    testbed: Testbed, tmp_path: Path
) -> None:
    async with serving(testbed, tmp_path, {}) as served:
        await cordon_approved_and_run(testbed)
    with attacker(served.db) as conn:
        conn.row_factory = sqlite3.Row
        conn.execute("UPDATE audit SET actor = 'U0MALLORY' WHERE action = 'vote'")
        prev = GENESIS
        for row in conn.execute("SELECT * FROM audit ORDER BY id").fetchall():
            fields = ("id", "time", "actor", "action", "job_id", "cluster", "target")
            event = {**{k: row[k] for k in fields}, "details": json.loads(row["details"])}
            forged = link_hash(UNKEYED, None, prev, event)  # all one can do without the key
            conn.execute(
                "UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", [prev, forged, row["id"]]
            )
            prev = forged
    result = kubegate_cli(served.db, "audit", "verify")
    assert result.returncode == 1
    assert "BROKEN at event 1" in result.stdout and "without kubegate's audit key" in result.stdout


async def test_a_forged_vote_row_plus_one_real_click_leaves_a_two_approval_job_pending(
    testbed: Testbed, tmp_path: Path
) -> None:
    async with serving(testbed, tmp_path, TWO_APPROVALS) as served:
        root = await request(testbed, "U0ALICE", "cordon worker-2")
        assert "Needs 2 more approvals" in root.shown
        with sqlite3.connect(served.db) as conn:
            digest = conn.execute("SELECT plan_digest FROM jobs WHERE id = 1").fetchone()[0]
            conn.execute(
                "INSERT INTO votes (job_id, voter, approve, plan_digest, at) VALUES (1, ?, 1, ?, ?)",
                ["U0CAROL", digest, "2026-11-30T04:00:00.000+00:00"],
            )
        await click(testbed, "U0BOB", root, "Approve")
        shown = await wait_text(testbed, root.ts, "Needs 1 more approval")
        assert "Approved by <@U0BOB>" in shown.shown and "U0CAROL" not in shown.shown
        with sqlite3.connect(served.db) as conn:
            state = conn.execute("SELECT state FROM jobs WHERE id = 1").fetchone()[0]
        assert state == "PENDING_APPROVAL"
        assert await unschedulable(testbed, "worker-2") != "true"
    result = kubegate_cli(served.db, "audit", "verify")
    assert result.returncode == 1
    assert "the vote of U0CAROL on job #1 is in the votes table but not in the audit chain" in (
        result.stdout
    )


def mode(path: Path) -> str:
    return subprocess.run(
        ["stat", "-c", "%a", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def permissive_umask() -> Any:
    """0600 must come from kubegate, not from a careful umask."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.usefixtures("permissive_umask")
async def test_database_wal_shm_key_and_anchor_file_are_0600(
    testbed: Testbed, tmp_path: Path
) -> None:
    async with serving(testbed, tmp_path, {}) as served:
        await cordon_approved_and_run(testbed)
        files = [*sqlite_files(served.db), key_file_next_to(served.db)]
        files.append(anchor_file_next_to(served.db))
        assert all(path.exists() for path in files), files
        assert {path.name: mode(path) for path in files} == {path.name: "600" for path in files}
