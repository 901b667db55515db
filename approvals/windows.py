"""Maintenance windows: when a scheduled change may start and by when it must have started.

Pure time arithmetic (UTC); the bot turns the answer into a timer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class MaintenanceWindow:
    name: str
    weekdays: tuple[str, ...]  # subset of WEEKDAYS
    start: time  # UTC
    duration: timedelta

    def next_slot(self, now: datetime) -> tuple[datetime, datetime]:
        """The slot that is open now, or the next one: (start, end), both UTC-aware."""
        today = now.date()
        for offset in range(-1, 8):  # yesterday's slot may still be open past midnight
            day = today + timedelta(days=offset)
            if WEEKDAYS[day.weekday()] not in self.weekdays:
                continue
            start = datetime.combine(day, self.start, tzinfo=now.tzinfo)
            end = start + self.duration
            if end > now:
                return max(start, now), end
        raise ValueError(f"maintenance window {self.name} has no weekday")


@dataclass(frozen=True)
class RunTime:
    start: datetime
    must_start_by: datetime


def run_time(
    *, now: datetime, at: datetime | None, window: MaintenanceWindow | None, execution: timedelta
) -> RunTime | None:
    """When an approved job runs: now, at `--at` (within the execution window after it), or in
    the next slot of a maintenance window (by the slot's end). None means run now."""
    if at is not None:
        return RunTime(start=at, must_start_by=at + execution)
    if window is not None:
        start, end = window.next_slot(now)
        return RunTime(start=start, must_start_by=end)
    return None


@dataclass(frozen=True)
class Freeze:
    """A change freeze: while it lasts, only break-glass changes run."""

    name: str
    start: datetime
    end: datetime
    clusters: tuple[str, ...] | None = None  # None: every cluster
    reason: str = ""


def active_freeze(freezes: list[Freeze], *, now: datetime, cluster: str) -> Freeze | None:
    return next(
        (
            f
            for f in freezes
            if f.start <= now < f.end and (f.clusters is None or cluster in f.clusters)
        ),
        None,
    )
