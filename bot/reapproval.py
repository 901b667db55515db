"""A job that needs a fresh approval before it may run on (its execution window closed, or the
cluster drifted from what was approved).

The plan gets a new revision, so its digest, which votes bind to, changes and earlier votes no
longer count; the job goes back to PENDING_APPROVAL under a new approval window. A job that
needs no vote (policy, or break-glass) runs on under a new execution window instead: the person
who retried it decides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from approvals import Windows
from bot.audit import AuditLog
from bot.gates import started
from bot.markup import escape
from bot.step_runner import JobThread
from bot.store import Job, JobState, Store, utcnow
from playbooks import Plan


@dataclass(frozen=True)
class Reapproval:
    store: Store
    audit: AuditLog
    windows: Windows
    refresh_root: Callable[[int], Awaitable[None]]
    thread: JobThread

    def renewed(self, job: Job, plan: Plan) -> Plan:
        """The plan to approve again, holding every lock the job took at its first start.

        A plan rebuilt from the live cluster names only what its playbook locks; the locks the
        request added (the control-plane lock of any job touching a control plane) would be
        missing, and a retry that takes the plan's locks again would run a control plane
        unguarded. The job keeps its locks until it ends, so its plan keeps naming them.
        """
        approved = Plan.model_validate(job.plan)
        locks = [*approved.locks, *(lock for lock in plan.locks if lock not in approved.locks)]
        return plan.model_copy(update={"revision": approved.revision + 1, "locks": locks})

    def lock_refusal(self, job: Job, plan: Plan) -> str | None:
        """Take every lock the renewed plan names before it is approved again or runs on (a
        lock the request did not need: a node that became a control plane since); or say
        which job holds one, in the words of the job's halt note."""
        holder = self.store.acquire_locks(job.id, job.cluster, plan.locks)
        if holder is None:
            return None
        held = self.store.job(holder)
        return (
            f"The plan now needs a lock job #{holder} (`{escape(held.command_text)}`) holds: "
            "retry once that job has ended."
        )

    async def ask_again(
        self, job: Job, plan: Plan, reason: str, *, changes: list[str] | None
    ) -> None:
        self.store.transition(
            job.id,
            from_states=[JobState.RUNNING],
            to=JobState.PENDING_APPROVAL,
            plan=plan.model_dump(mode="json"),
            plan_digest=plan.digest,
            approval_deadline=utcnow() + self.windows.approval,
            approved_at=None,
            execution_deadline=None,
            outcome=f"{reason} Fresh approval needed.",
        )
        action = "plan.drift" if changes else "approval.renewal"
        self.audit.record_job(
            action,
            job,
            actor="system",
            reason=reason,
            changes=changes or [],
            plan_digest=plan.digest,
        )
        await self.refresh_root(job.id)
        if started(self.store.steps(job.id)):
            await self.thread.say(job, f"🔁 {reason} Approve it again in the message above.")

    def renew_without_votes(self, job: Job, plan: Plan, reason: str) -> Job:
        """The job runs on under a new execution window; the caller re-checks the cluster."""
        now = utcnow()
        self.store.transition(
            job.id,
            from_states=[JobState.RUNNING],
            to=JobState.RUNNING,
            plan=plan.model_dump(mode="json"),
            plan_digest=plan.digest,
            approved_at=now,
            execution_deadline=now + self.windows.execution,
        )
        job = self.store.job(job.id)
        self.audit.record_job(
            "approval.renewal",
            job,
            actor="system",
            reason=reason,
            approvals_needed=0,
            plan_digest=plan.digest,
        )
        return job
