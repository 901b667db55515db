"""A retry passes the same gates as the first start: a closed execution window needs a fresh
approval, a change freeze refuses it; abort (an undo) is allowed during a freeze."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from testbed.slack import Message
from testbed.up import Testbed
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import (
    CHANNEL,
    audit_of,
    click,
    request,
    unschedulable,
    wait_ephemeral,
    wait_reply,
    wait_text,
)

FREEZE = {
    "freezes": [
        {
            "name": "year-end",
            "start": "2026-01-01T00:00:00Z",
            "end": "2099-01-01T00:00:00Z",
            "reason": "holiday trading",
        }
    ]
}


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def job_row(db: Path, job_id: int) -> sqlite3.Row:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row: sqlite3.Row = conn.execute("SELECT * FROM jobs WHERE id = ?", [job_id]).fetchone()
    return row


def steps_started(db: Path) -> list[int]:
    """The step numbers of job #1 that were started, in order (from the audit log)."""
    events = audit_of(db).events(job_id=1)
    return [e["details"]["step"] for e in events if e["action"] == "step.start"]


async def halted_drain(testbed: Testbed, timeout: str) -> tuple[Message, Message]:
    """A drain of worker-1 that cordoned it, then timed out evicting (a PDB held): FAILED."""
    await testbed.apiserver.load_scenario("drain")
    testbed.apiserver.readiness_delay = 60  # replacements never get Ready in time: the PDB holds
    root = await request(
        testbed, "U0ALICE", f"drain worker-1 --delete-emptydir-data --timeout {timeout}"
    )
    await click(testbed, "U0BOB", root, "Approve")
    halted = await wait_reply(testbed, root, "halted", timeout=60)
    assert "[Retry step]" in halted.shown
    assert await unschedulable(testbed, "worker-1") == "true"
    return root, halted


@pytest.mark.parametrize("config_changes", [{"windows": {"approval": "30m", "execution": "5s"}}])
async def test_a_retry_after_the_execution_window_closed_waits_for_a_fresh_approval(
    testbed: Testbed, kubegate: Served
) -> None:
    root, _ = await halted_drain(testbed, timeout="5s")
    closes = datetime.fromisoformat(job_row(kubegate.db, 1)["execution_deadline"])
    await until(lambda: datetime.now(UTC) > closes)
    # From now on the PDB lets the drain through (more headroom is no drift).
    testbed.apiserver.objects.patch(
        "policy/v1", "poddisruptionbudgets", "shop", "web", {"spec": {"maxUnavailable": 3}}
    )

    await testbed.slack.user("U0ALICE").slash("/kube retry 1", channel=CHANNEL)
    again = await wait_text(testbed, root.ts, "Fresh approval needed")
    assert "execution window closed" in again.shown and "[Approve]" in again.shown
    # The person retrying is told so too, never "Retrying…" for a job that does not run.
    told = await wait_ephemeral(testbed, "U0ALICE", "needs a fresh approval")
    assert "Nothing ran now" in told.shown
    assert not any("Retrying" in m.shown for m in testbed.slack.ephemerals(CHANNEL, "U0ALICE"))
    assert "Needs 1 more approval" in again.shown  # Bob's first vote does not carry over
    assert job_row(kubegate.db, 1)["state"] == "PENDING_APPROVAL"
    await wait_reply(testbed, root, "Approve it again")
    assert steps_started(kubegate.db) == [1, 2]  # nothing ran on the retry itself
    assert "approval.renewal" in [e["action"] for e in audit_of(kubegate.db).events(job_id=1)]

    await click(testbed, "U0ALICE", root, "Approve")  # still not the requester's to approve
    await wait_ephemeral(testbed, "U0ALICE", "your vote does not count")
    await click(testbed, "U0BOB", root, "Approve")
    done = await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    assert "approved by <@U0BOB>" in done.shown
    assert steps_started(kubegate.db) == [1, 2, 2, 3]  # went on at the step that had failed
    assert await unschedulable(testbed, "worker-1") == "true"


@pytest.mark.parametrize("config_changes", [{"windows": {"approval": "30m", "execution": "5s"}}])
async def test_rejecting_a_half_done_job_sent_back_for_approval_undoes_what_it_changed(
    testbed: Testbed, kubegate: Served
) -> None:
    root, _ = await halted_drain(testbed, timeout="5s")
    closes = datetime.fromisoformat(job_row(kubegate.db, 1)["execution_deadline"])
    await until(lambda: datetime.now(UTC) > closes)
    await testbed.slack.user("U0ALICE").slash("/kube retry 1", channel=CHANNEL)
    await wait_text(testbed, root.ts, "Fresh approval needed")

    await click(testbed, "U0BOB", root, "Reject")
    ended = await wait_text(testbed, root.ts, "CANCELLED", timeout=30)
    assert "worker-1 uncordoned again" in ended.shown
    assert await unschedulable(testbed, "worker-1") != "true"
    assert "rejection" in [e["action"] for e in audit_of(kubegate.db).events(job_id=1)]


async def test_during_a_freeze_a_retry_is_refused_and_the_job_can_still_be_undone(
    testbed: Testbed, tmp_path: Path
) -> None:
    async with serving(testbed, tmp_path, {}) as served:
        root, halted = await halted_drain(testbed, timeout="3s")
    async with serving(testbed, tmp_path, FREEZE):  # kubegate restarted with a freeze
        await testbed.slack.user("U0ALICE").slash("/kube retry 1", channel=CHANNEL)
        # The person retrying hears the refusal itself, never a "Retrying…" that then fails.
        refused = await wait_ephemeral(testbed, "U0ALICE", "was not retried")
        assert "Change freeze `year-end`" in refused.shown and "stays failed" in refused.shown
        assert not any("Retrying" in m.shown for m in testbed.slack.ephemerals(CHANNEL))
        await click(testbed, "U0BOB", halted, "Retry step")
        await wait_ephemeral(testbed, "U0BOB", "was not retried")
        assert job_row(served.db, 1)["state"] == "FAILED"
        assert steps_started(served.db) == [1, 2]

        await click(testbed, "U0ALICE", halted, "Uncordon")
        undone = await wait_text(testbed, root.ts, "CANCELLED")
        assert "worker-1 uncordoned again" in undone.shown
        assert await unschedulable(testbed, "worker-1") != "true"


def _refusals(testbed: Testbed, root: Message) -> list[Message]:
    return [m for m in testbed.slack.replies(CHANNEL, root.ts) if "was not retried" in m.shown]
