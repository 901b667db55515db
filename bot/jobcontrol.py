"""`/kube cancel <id>` and `/kube retry <id>`: job control by the people responsible for a job.

The requester, an approver of the job's verb, or whoever the policy lets request `cancel` /
`retry` may use them; every use is audited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from approvals import may_request
from bot.store import END_STATES, Job, JobState, utcnow
from commands import CancelCommand, Command, RetryCommand

if TYPE_CHECKING:
    from bot.service import Kubegate

WAITING = [JobState.PENDING_APPROVAL, JobState.APPROVED, JobState.SCHEDULED]
HALTED = [JobState.INTERRUPTED, JobState.FAILED]


async def responsible(kubegate: Kubegate, job: Job, *, user: str, verb: str) -> bool:
    if user == job.requester:
        return True
    roles = await kubegate.roles(user)
    rule = kubegate.rule(job.verb, job.cluster)
    if rule is not None and roles & set(rule.approvers):
        return True
    own = kubegate.rule(verb, job.cluster)
    return (
        own is not None
        and may_request(own, verb=verb, cluster=job.cluster, requester_roles=roles).allowed
    )


async def control_job(kubegate: Kubegate, command: Command, *, user: str, channel: str) -> None:
    assert isinstance(command, CancelCommand | RetryCommand)
    job = kubegate.store.find_job(command.job_id)
    if job is None:
        await kubegate.chat.ephemeral(
            channel, user, f"There is no job #{command.job_id}. `/kube jobs` lists recent ones."
        )
        return
    if not await responsible(kubegate, job, user=user, verb=command.verb):
        kubegate.audit.record_job(
            "refusal", job, actor=user, reason=f"may not {command.verb} this job"
        )
        await kubegate.chat.ephemeral(
            channel,
            user,
            f"Only the requester or an approver of job #{job.id} may {command.verb} it.",
        )
        return
    kubegate.audit.record_job(command.verb, job, actor=user)
    answer = await (
        cancel(kubegate, job, user=user)
        if isinstance(command, CancelCommand)
        else retry(kubegate, job, user=user)
    )
    await kubegate.chat.ephemeral(channel, user, answer)


async def cancel(kubegate: Kubegate, job: Job, *, user: str) -> str:
    if job.state in END_STATES:
        return f"Job #{job.id} already ended ({job.state.value}); nothing to cancel."
    cancelled = job.state in WAITING and kubegate.store.transition(
        job.id, from_states=WAITING, to=JobState.CANCELLED, finished_at=utcnow(),
        outcome=f"Cancelled by <@{user}> before it ran.",
    )  # fmt: skip
    if cancelled:
        await kubegate.refresh_root(job.id)
        return f"Job #{job.id} cancelled; it never ran."
    if job.state is JobState.RUNNING:
        kubegate.engine.request_cancel(job.id)
        return f"Job #{job.id} will stop at its next safe point and undo what it changed."
    if job.state in HALTED:
        kubegate.spawn(_abort(kubegate, job.id, user))
        return f"Job #{job.id} is being aborted: kubegate undoes what it changed."
    return f"Job #{job.id} is {job.state.value}; try again in a moment."


def relock(kubegate: Kubegate, job: Job) -> str | None:
    """A halted job released its locks; take them again before it runs, or say who holds them."""
    held = kubegate.store.acquire_locks(job.id, job.cluster, job.plan.get("locks", []))
    if held is not None:
        return f"Job #{held} now holds a lock job #{job.id} needs; wait for it to end."
    return None


async def retry(kubegate: Kubegate, job: Job, *, user: str) -> str:
    if job.state not in HALTED:
        return (
            f"Only a failed or interrupted job can be retried; job #{job.id} is {job.state.value}."
        )
    refusal = relock(kubegate, job)
    if refusal:
        return refusal
    kubegate.spawn(_resume(kubegate, job.id, user))
    return f"Retrying job #{job.id} from its first unfinished step."


async def _resume(kubegate: Kubegate, job_id: int, user: str) -> None:
    await kubegate.engine.resume(job_id, actor=user, from_states=HALTED)


async def _abort(kubegate: Kubegate, job_id: int, user: str) -> None:
    await kubegate.engine.abort(job_id, actor=user, from_states=HALTED)
