"""`/kube status` on a running `kubegate serve` tells an operator under an incident which kubegate
runs the jobs, which one stands by, and what Slack has not yet received (issue 13)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

from testbed.slack import Message
from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import CHANNEL, click, request, wait_text
from tests.e2e.test_durable import launch
from tests.e2e.test_restart import KubegateProcess, job_state, until


async def status_of(testbed: Testbed, user: str) -> Message:
    """Type `/kube status` and wait for its answer (a new one, not an earlier answer)."""
    before = len(testbed.slack.ephemerals(CHANNEL, user))
    response = await testbed.slack.user(user).slash("/kube status", channel=CHANNEL)
    assert response.status == 200

    def answered() -> Message | None:
        new = testbed.slack.ephemerals(CHANNEL, user)[before:]
        return next((m for m in new if "nodes Ready" in m.shown), None)

    return await testbed.slack.wait_for(answered, timeout=15)


def standbys_known(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM lease_standbys").fetchone()[0])


def messages_waiting(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()
    return int(row[0])


async def test_status_names_the_kubegate_running_the_jobs_and_the_one_standing_by(
    testbed: Testbed, kubegate: Served, tmp_path: Path
) -> None:
    status = await status_of(testbed, "U0ALICE")
    host = socket.gethostname()
    assert f"Jobs run by: kubegate on host {host} pid {os.getpid()} (lease renewed" in status.shown
    assert "this one" in status.shown
    assert "Standing by" not in status.shown
    assert "Slack:" not in status.shown  # nothing waits: nothing said about delivery

    app_url = testbed.slack.app_url
    second = KubegateProcess(testbed, kubegate.db, tmp_path / "second.log")
    testbed.slack.app_url = app_url  # Slack still speaks to the first
    launch(second)  # started by mistake on the same database
    try:
        await until(lambda: standbys_known(kubegate.db) == 1, timeout=30)
        assert second.process is not None
        status = await status_of(testbed, "U0ALICE")
        assert f"Standing by: kubegate on host {host} pid {second.process.pid} " in status.shown
        assert "runs no job until the lease is free" in status.shown
    finally:
        second.kill(signal.SIGTERM)  # a standby stopped cleanly is no longer named
    status = await status_of(testbed, "U0ALICE")
    assert "Standing by" not in status.shown


def next_try_in(db: Path) -> float | None:
    """Seconds until the outbox next tries a message Slack refused, if one waits."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT MIN(not_before) FROM outbox WHERE state = 'pending' AND attempts > 0"
        ).fetchone()
    return None if row[0] is None else float(row[0]) - time.time()


async def test_status_shows_messages_waiting_for_slack_after_an_outage_then_none(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-3")
    assert testbed.faults is not None
    await testbed.faults.apply("slack-error", ["500"])
    await click(testbed, "U0BOB", root, "Approve")  # the job's messages cannot be sent now
    await until(lambda: job_state(kubegate.db, 1) == "SUCCEEDED", timeout=30)
    assert messages_waiting(kubegate.db) > 0

    # The answer itself needs Slack, so Slack comes back at a moment the job's messages are
    # still some seconds from their next try (their backoff grows with every refusal): the
    # operator then sees them waiting, and why.
    await until(lambda: (next_try_in(kubegate.db) or 0) > 6, timeout=60)
    await testbed.faults.apply("slack-error-clear", [])
    status = await status_of(testbed, "U0ALICE")
    assert "messages waiting to be delivered (oldest " in status.shown, status.shown
    assert "last error: HTTP 500" in status.shown

    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    await until(lambda: messages_waiting(kubegate.db) == 0, timeout=60)
    status = await status_of(testbed, "U0ALICE")
    assert "Slack:" not in status.shown
    assert "Jobs run by: kubegate on host" in status.shown


async def acknowledged(testbed: Testbed, user: str, command_line: str) -> str:
    """The slash command's own answer: it goes back on the request, not through the Web API."""
    response = await testbed.slack.user(user).slash(command_line, channel=CHANNEL)
    assert response.status == 200, response.body
    return str((response.json or {}).get("text", response.body))


async def test_during_a_slack_outage_the_commands_own_answer_says_slack_refuses_messages(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-3")
    assert "refusing" not in await acknowledged(testbed, "U0ALICE", "/kube jobs")
    assert testbed.faults is not None
    await testbed.faults.apply("slack-error", ["500"])
    await click(testbed, "U0BOB", root, "Approve")  # the job's messages cannot be sent now
    await until(lambda: job_state(kubegate.db, 1) == "SUCCEEDED", timeout=30)
    await until(lambda: messages_waiting(kubegate.db) > 0, timeout=30)

    # `/kube status` would answer through the Web API, which fails: its acknowledgement says so.
    ack = await acknowledged(testbed, "U0ALICE", "/kube status")
    assert "Slack has been refusing kubegate's messages for " in ack, ack
    assert "(last: HTTP 500" in ack
    assert "Jobs keep running and their messages are kept until Slack takes them" in ack

    await testbed.faults.apply("slack-error-clear", [])
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    await until(lambda: messages_waiting(kubegate.db) == 0, timeout=60)
    assert "refusing" not in await acknowledged(testbed, "U0ALICE", "/kube jobs")
