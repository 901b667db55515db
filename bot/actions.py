"""Button clicks: votes on a pending job, and Resume / Retry / Abort on a halted one.

Each click is checked against the job's current state; a second click, or Slack redelivering
the same one, finds the job already moved on and changes nothing.
"""

from __future__ import annotations

from approvals import Tally, Vote, may_vote, tally, within
from bot.alerts import alert_click
from bot.chat import (
    ABORT,
    ALERT_CORDON,
    ALERT_DRAIN,
    ALERT_SILENCE,
    APPROVE,
    REJECT,
    RESUME,
    RETRY,
    REVIEW,
)
from bot.jobcontrol import HALTED, relock, responsible
from bot.render import interrupted_card
from bot.service import Kubegate
from bot.store import Job, JobState, utcnow


async def handle_click(
    kubegate: Kubegate,
    *,
    user: str,
    channel: str,
    action_id: str,
    value: str,
    message_ts: str | None = None,
) -> None:
    """Answer a click; refusals go privately to the clicker."""
    if action_id in (ALERT_CORDON, ALERT_DRAIN, ALERT_SILENCE) and kubegate.alerts is not None:
        said = await alert_click(kubegate.alerts, kubegate, user=user, channel=channel,
                                 action_id=action_id, value=value)  # fmt: skip
        if said:
            await kubegate.chat.ephemeral(channel, user, said)
        return
    job_id_text, _, digest = value.partition(":")
    job = kubegate.store.find_job(int(job_id_text)) if job_id_text.isdigit() else None
    if job is None:
        await kubegate.chat.ephemeral(channel, user, "That job no longer exists.")
        return
    if action_id in (APPROVE, REJECT) and job.root_ts is None and message_ts:
        # The click came from the root message before we stored its ts (our post was still
        # returning): the click tells us where it is.
        kubegate.store.set_root_ts(job.id, message_ts, only_if_missing=True)
        job = kubegate.store.job(job.id)
    if action_id in (APPROVE, REJECT):
        refusal = await vote(kubegate, job, user=user, approve=action_id == APPROVE, digest=digest)
    elif action_id == REVIEW:
        refusal = await acknowledge_review(kubegate, job, user=user)
    elif action_id in (RESUME, RETRY, ABORT):
        refusal = await control(kubegate, job, user=user, action_id=action_id)
    else:
        refusal = "kubegate does not know that button."
    if refusal:
        await kubegate.chat.ephemeral(channel, user, refusal)


async def vote(
    kubegate: Kubegate, job: Job, *, user: str, approve: bool, digest: str
) -> str | None:
    if job.state is not JobState.PENDING_APPROVAL:
        return f"Job #{job.id} is already {job.state.value.lower().replace('_', ' ')}; your vote was not counted."
    if digest != job.plan_digest:
        return f"The plan of job #{job.id} changed since that message; vote on the updated message."
    if not within(utcnow(), job.approval_deadline):
        await expire(kubegate, job)
        kubegate.audit.record_job("refusal", job, actor=user, reason="approval window closed")
        return f"The approval window of job #{job.id} closed at {job.approval_deadline:%H:%M} UTC; request it again."
    rule = kubegate.rule(job.verb, job.cluster)
    decision = may_vote(
        rule, voter=user, voter_roles=await kubegate.roles(user), requester=job.requester
    )
    if not decision.allowed:
        kubegate.audit.record_job(
            "refusal",
            job,
            actor=user,
            reason=decision.reason,
            vote="approve" if approve else "reject",
        )
        return decision.reason
    if not kubegate.store.record_vote(job.id, voter=user, approve=approve, plan_digest=digest):
        return "You already voted on this request."
    kubegate.audit.record_job("vote", job, actor=user, approve=approve, plan_digest=digest)
    votes = [Vote(v.voter, v.approve, v.plan_digest) for v in kubegate.store.votes(job.id)]
    outcome = tally(votes, needed=job.approvals_needed, plan_digest=job.plan_digest)
    if outcome is Tally.REJECTED:
        if kubegate.store.transition(
            job.id,
            from_states=[JobState.PENDING_APPROVAL],
            to=JobState.REJECTED,
            finished_at=utcnow(),
            outcome=f"Rejected by <@{user}>.",
        ):
            kubegate.audit.record_job(
                "rejection",
                job,
                actor=user,
            )
    elif outcome is Tally.APPROVED:
        await kubegate.approve_now(job.id, actor=user)
        return None
    await kubegate.refresh_root(job.id)
    return None


async def control(kubegate: Kubegate, job: Job, *, user: str, action_id: str) -> str | None:
    """[Resume]/[Retry step] and [Abort] on a halted job: the same rules as /kube retry|cancel."""
    verb = "cancel" if action_id == ABORT else "retry"
    if not await responsible(kubegate, job, user=user, verb=verb):
        kubegate.audit.record_job("refusal", job, actor=user, reason=f"not allowed to {action_id}")
        return f"Only the requester or an approver of job #{job.id} may do that."
    if action_id == ABORT:
        done = await kubegate.engine.abort(job.id, actor=user, from_states=HALTED)
    else:
        refusal = relock(kubegate, job)
        if refusal:
            return refusal
        done = await kubegate.engine.resume(job.id, actor=user, from_states=HALTED)
    if not done:
        return f"Job #{job.id} is {job.state.value.lower()}; nothing to do."
    return None


async def acknowledge_review(kubegate: Kubegate, job: Job, *, user: str) -> str | None:
    """Someone other than the requester, holding an approver role, looked at a break-glass run."""
    rule = kubegate.rule(job.verb, job.cluster)
    decision = may_vote(
        rule, voter=user, voter_roles=await kubegate.roles(user), requester=job.requester
    )
    if not decision.allowed:
        kubegate.audit.record_job(
            "refusal", job, actor=user, reason="may not acknowledge this review"
        )
        if user == job.requester:
            return "You ran this break-glass change yourself: someone else must review it."
        roles = " or ".join(f"`{r}`" for r in rule.approvers) if rule else "an approver"
        return f"Only {roles} may acknowledge this review."
    if not kubegate.store.acknowledge_review(job.id, user):
        return f"The review of job #{job.id} was already acknowledged."
    kubegate.audit.record_job("break-glass.reviewed", job, actor=user)
    await kubegate.refresh_root(job.id)
    return None


async def expire(kubegate: Kubegate, job: Job) -> None:
    if kubegate.store.transition(
        job.id,
        from_states=[JobState.PENDING_APPROVAL],
        to=JobState.EXPIRED,
        finished_at=utcnow(),
        outcome="The approval window closed without enough approvals.",
    ):
        kubegate.audit.record_job(
            "expiry",
            job,
            actor="system",
        )
        await kubegate.refresh_root(job.id)


async def expire_overdue(kubegate: Kubegate) -> None:
    for job in kubegate.store.jobs_in([JobState.PENDING_APPROVAL]):
        if not within(utcnow(), job.approval_deadline):
            await expire(kubegate, job)


async def recover_interrupted(kubegate: Kubegate) -> None:
    """After a restart: jobs that were running (or about to) are shown as INTERRUPTED."""
    for job in kubegate.store.jobs_in([JobState.RUNNING, JobState.APPROVED]):
        if not kubegate.store.transition(
            job.id, from_states=[JobState.RUNNING, JobState.APPROVED], to=JobState.INTERRUPTED
        ):
            continue
        kubegate.audit.record_job(
            "job.interrupted",
            job,
            actor="system",
            was=job.state.value,
        )
        await kubegate.refresh_root(job.id)
        if job.root_ts:
            card = interrupted_card(kubegate.store.job(job.id), kubegate.store.steps(job.id))
            await kubegate.chat.post(job.channel, card, thread_ts=job.root_ts)
