"""When a scheduled change runs: --at, or the next slot of a maintenance window (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from approvals import MaintenanceWindow, run_time

SATURDAY_NIGHT = MaintenanceWindow("sat-night", ("sat",), time(2, 0), timedelta(hours=4))


def test_the_next_slot_is_the_coming_saturday_at_two() -> None:
    tuesday = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    start, end = SATURDAY_NIGHT.next_slot(tuesday)
    assert (start, end) == (
        datetime(2026, 11, 28, 2, 0, tzinfo=UTC),
        datetime(2026, 11, 28, 6, 0, tzinfo=UTC),
    )


def test_inside_an_open_slot_the_job_runs_now_and_must_start_by_its_end() -> None:
    during = datetime(2026, 11, 28, 3, 30, tzinfo=UTC)
    when = run_time(now=during, at=None, window=SATURDAY_NIGHT, execution=timedelta(hours=2))
    assert when is not None and when.start == during and when.must_start_by.hour == 6


def test_at_runs_at_that_time_within_the_execution_window() -> None:
    now = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    when = run_time(now=now, at=at, window=None, execution=timedelta(hours=2))
    assert when is not None and (when.start, when.must_start_by) == (at, at + timedelta(hours=2))
    assert run_time(now=now, at=None, window=None, execution=timedelta(hours=2)) is None
