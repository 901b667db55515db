"""The gates a job passes whenever it starts: first start, retry, resume (bot/gates.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from approvals import Freeze
from bot.gates import Stop, gate
from bot.store import Job, JobState

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
YEAR_END = Freeze(name="year-end", start=NOW - timedelta(days=1), end=NOW + timedelta(days=9))


def job(*, window_left: timedelta = timedelta(hours=1), break_glass: str | None = None) -> Job:
    return Job(
        id=7,
        cluster="prod",
        verb="drain",
        target="worker-1",
        requester="U0ALICE",
        channel="C0OPS",
        command_text="drain worker-1",
        state=JobState.FAILED,
        plan={},
        plan_digest="abc",
        approvals_needed=1,
        created_at=NOW - timedelta(hours=1),
        approval_deadline=NOW - timedelta(minutes=30),
        approved_at=NOW - timedelta(minutes=50),
        execution_deadline=NOW + window_left,
        root_ts="1.0",
        finished_at=None,
        outcome=None,
        break_glass=break_glass,
    )


def test_a_retry_within_the_window_and_without_a_freeze_may_run() -> None:
    assert gate(job(), now=NOW, freeze=None, started=True, retry=True) is None


def test_a_retry_during_a_freeze_is_refused_and_the_job_stays_as_it_is() -> None:
    stopped = gate(job(), now=NOW, freeze=YEAR_END, started=True, retry=True)
    assert stopped is not None and stopped.stop is Stop.REFUSE
    assert "Change freeze `year-end`" in stopped.reason and "stays failed" in stopped.reason


def test_a_first_start_during_a_freeze_halts_the_job() -> None:
    stopped = gate(job(), now=NOW, freeze=YEAR_END, started=False, retry=False)
    assert stopped is not None and stopped.stop is Stop.HALT


def test_a_break_glass_job_is_not_stopped_by_a_freeze() -> None:
    assert (
        gate(job(break_glass="disk failing"), now=NOW, freeze=YEAR_END, started=True, retry=True)
        is None
    )


def test_a_retry_after_the_window_closed_needs_a_fresh_approval() -> None:
    closed = job(window_left=-timedelta(seconds=1))
    for started in (True, False):
        stopped = gate(closed, now=NOW, freeze=None, started=started, retry=True)
        assert stopped is not None and stopped.stop is Stop.REAPPROVE
        assert "fresh approval" in stopped.reason


def test_a_job_that_began_and_is_approved_again_late_needs_yet_another_approval() -> None:
    stopped = gate(
        job(window_left=-timedelta(seconds=1)), now=NOW, freeze=None, started=True, retry=False
    )
    assert stopped is not None and stopped.stop is Stop.REAPPROVE


def test_a_first_start_after_the_window_closed_expires_the_job() -> None:
    stopped = gate(
        job(window_left=-timedelta(seconds=1)), now=NOW, freeze=None, started=False, retry=False
    )
    assert stopped is not None and stopped.stop is Stop.EXPIRE
