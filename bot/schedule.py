"""Timers for scheduled jobs (APScheduler). The store is the record of what is scheduled; the
timers are rebuilt from it at start, so scheduled jobs survive restarts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger


class JobScheduler:
    def __init__(self, run: Callable[[int], Awaitable[None]]) -> None:
        self._run = run
        self.apscheduler = AsyncIOScheduler(timezone=UTC)

    def start(self) -> None:
        if not self.apscheduler.running:
            self.apscheduler.start()

    def shutdown(self) -> None:
        if self.apscheduler.running:
            self.apscheduler.shutdown(wait=False)

    def run_at(self, job_id: int, when: datetime) -> None:
        self.start()
        when = max(when, datetime.now(UTC))
        # No misfire limit: a timer that fires late still runs; the engine then checks the
        # job's execution window and expires it if the window has closed.
        self.apscheduler.add_job(
            self._run,
            DateTrigger(run_date=when),
            args=[job_id],
            id=f"job-{job_id}",
            replace_existing=True,
            misfire_grace_time=None,
        )
