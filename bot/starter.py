"""From enough approvals to a running job: record the approval, then start now or set a timer
(`--at`, a maintenance window); timers are rebuilt from the store after a restart."""

from __future__ import annotations

from approvals import Windows, run_time
from bot.audit import AuditLog
from bot.engine import Engine, RootRefresher
from bot.gates import started
from bot.schedule import JobScheduler
from bot.store import JobState, Store, utcnow
from bot.timing import ChangeCalendar


class JobStarter:
    def __init__(
        self,
        *,
        store: Store,
        audit: AuditLog,
        engine: Engine,
        windows: Windows,
        calendar: ChangeCalendar,
        refresh_root: RootRefresher,
    ) -> None:
        self._store = store
        self._audit = audit
        self._engine = engine
        self._windows = windows
        self._calendar = calendar
        self._refresh_root = refresh_root
        self.scheduler = JobScheduler(self.run_scheduled)

    async def approve_now(self, job_id: int, *, actor: str) -> None:
        """Quorum met: record the approval, then run now or set the job's timer."""
        now = utcnow()
        job = self._store.job(job_id)
        # A job approved again after some of its steps ran (drift, a closed window) continues
        # now: its `--at` or maintenance slot was for its first start.
        resumed = started(self._store.steps(job_id))
        when = run_time(
            now=now,
            at=None if resumed else getattr(job.command, "at", None),
            window=None if resumed else self._calendar.window(getattr(job.command, "window", None)),
            execution=self._windows.execution,
        )
        later = when is not None and when.start > now
        if not self._store.transition(
            job_id,
            from_states=[JobState.PENDING_APPROVAL],
            to=JobState.SCHEDULED if later else JobState.APPROVED,
            approved_at=now,
            execution_deadline=when.must_start_by if when else now + self._windows.execution,
            scheduled_for=when.start if when else None,
        ):
            return
        job = self._store.job(job_id)
        approvers = sorted(
            {
                v.voter
                for v in self._store.votes(job_id)
                if v.approve and v.plan_digest == job.plan_digest
            }
        )
        self._audit.record_job(
            "approval", job, actor=actor, approvers=approvers, plan_digest=job.plan_digest
        )
        if later and when is not None:
            self._audit.record_job(
                "scheduled",
                job,
                actor="system",
                start=when.start.isoformat(),
                must_start_by=when.must_start_by.isoformat(),
            )
            self.scheduler.run_at(job.id, when.start)
            await self._refresh_root(job_id)
            return
        await self._engine.start(job_id)  # it updates the root message as the job starts

    async def run_scheduled(self, job_id: int) -> None:
        """A scheduled job's time has come (its timer, or a restart that found it due)."""
        if self._store.transition(job_id, from_states=[JobState.SCHEDULED], to=JobState.APPROVED):
            await self._engine.start(job_id)

    def restore_timers(self) -> None:
        for job in self._store.jobs_in([JobState.SCHEDULED]):
            self.scheduler.run_at(job.id, job.scheduled_for or utcnow())
