"""Button clicks: votes on a pending job, and Resume / Retry / Abort on a halted one.

Each click is checked against the job's current state; a second click, or Slack redelivering
the same one, finds the job already moved on and changes nothing.
"""

from __future__ import annotations

from approvals import Tally, Vote, may_vote, tally, within
from bot.access import Access
from bot.alerts import Alerts, alert_click
from bot.audit import AuditLog
from bot.chat import (
    ABORT,
    ALERT_CORDON,
    ALERT_DRAIN,
    APPROVE,
    REJECT,
    RESUME,
    RETRY,
    REVIEW,
    Chat,
)
from bot.engine import Engine, RootRefresher
from bot.gates import started
from bot.job_buttons import JobButtonValue, JobNonces, misplaced_click
from bot.jobcontrol import HALTED, responsible, retry_refusal
from bot.render import interrupted_card
from bot.silence_flow import SILENCE_BUTTONS, SilenceClicks
from bot.starter import JobStarter
from bot.store import Job, JobState, Store, utcnow
from bot.work import Background, CommandReceiver

ALERT_BUTTONS = (ALERT_CORDON, ALERT_DRAIN)


class Clicks:
    def __init__(
        self,
        *,
        store: Store,
        audit: AuditLog,
        chat: Chat,
        access: Access,
        engine: Engine,
        starter: JobStarter,
        refresh_root: RootRefresher,
        alerts: Alerts,
        silences: SilenceClicks,
        commands: CommandReceiver,
        background: Background,
        nonces: JobNonces,
    ) -> None:
        self._nonces = nonces
        self._store = store
        self._audit = audit
        self._chat = chat
        self._access = access
        self._engine = engine
        self._starter = starter
        self._refresh_root = refresh_root
        self._alerts = alerts
        self._silences = silences
        self._commands = commands
        self._background = background

    async def handle(
        self, *, user: str, channel: str, action_id: str, value: str, message_ts: str | None = None
    ) -> None:
        """Answer a click; refusals go privately to the clicker."""
        said: str | None
        if action_id in SILENCE_BUTTONS:
            said = await self._silences.click(
                user=user, channel=channel, action_id=action_id, value=value, message_ts=message_ts
            )
        elif action_id in ALERT_BUTTONS:
            group_text = value.partition(":")[0]
            said = alert_click(
                commands=self._commands,
                background=self._background,
                home=self._alerts.home(int(group_text)) if group_text.isdigit() else None,
                user=user,
                channel=channel,
                action_id=action_id,
                value=value,
            )
        else:
            said = await self._on_job_button(
                user=user, channel=channel, action_id=action_id, value=value, message_ts=message_ts
            )
        if said:
            await self._chat.ephemeral(channel, user, said)

    async def _on_job_button(
        self, *, user: str, channel: str, action_id: str, value: str, message_ts: str | None
    ) -> str | None:
        job = await self._clicked_job(
            user=user, channel=channel, action_id=action_id, value=value, message_ts=message_ts
        )
        if job is None:
            return None
        digest = JobButtonValue.parse(value).digest
        return await self._on_job(job, user=user, action_id=action_id, digest=digest)

    async def _clicked_job(
        self, *, user: str, channel: str, action_id: str, value: str, message_ts: str | None
    ) -> Job | None:
        """The job a click acts on, or None when the clicker was told (and the audit log says)
        why the click does not count: no such job, or not that job's own message and nonce."""
        clicked = JobButtonValue.parse(value)
        job = self._store.find_job(clicked.job_id) if clicked.job_id is not None else None
        if job is None:
            self._audit.record(
                "refusal", actor=user, reason="click on a job that does not exist", value=value
            )
            await self._chat.ephemeral(channel, user, "That job no longer exists.")
            return None
        nonce_ok = self._nonces.matches(job.id, clicked.nonce)
        early = job.root_ts is None and channel == job.channel
        if nonce_ok and early and message_ts and action_id in (APPROVE, REJECT):
            # The click came from the root message before we stored its ts (our post was still
            # returning): the click, carrying the job's nonce, tells us where it is.
            self._store.set_root_ts(job.id, message_ts, only_if_missing=True)
            job = self._store.job(job.id)
        why = misplaced_click(
            job.id,
            job_channel=job.channel,
            root_ts=job.root_ts,
            channel=channel,
            message_ts=message_ts,
            action_id=action_id,
            nonce_ok=nonce_ok,
            own_message=self._nonces.is_own_message(job.id, message_ts),
        )
        if why is None:
            return job
        self._audit.record_job("refusal", job, actor=user, reason=why, button=action_id)
        await self._chat.ephemeral(
            channel,
            user,
            f"That button is not on job #{job.id}'s own message, so it does nothing. "
            f"Use the buttons on the job's message in <#{job.channel}>.",
        )
        return None

    async def _on_job(self, job: Job, *, user: str, action_id: str, digest: str) -> str | None:
        if action_id in (APPROVE, REJECT):
            return await self.vote(job, user=user, approve=action_id == APPROVE, digest=digest)
        if action_id == REVIEW:
            return await self.acknowledge_review(job, user=user)
        if action_id in (RESUME, RETRY, ABORT):
            return await self.control(job, user=user, action_id=action_id)
        return "kubegate does not know that button."

    async def vote(self, job: Job, *, user: str, approve: bool, digest: str) -> str | None:
        refusal = await self._may_vote(job, user=user, approve=approve, digest=digest)
        if refusal:
            return refusal
        if not self._audit.record_vote(job, voter=user, approve=approve, plan_digest=digest):
            return "You already voted on this request."
        votes = [Vote(v.voter, v.approve, v.plan_digest) for v in self._store.votes(job.id)]
        outcome = tally(votes, needed=job.approvals_needed, plan_digest=job.plan_digest)
        if outcome is Tally.APPROVED:
            await self._starter.approve_now(job.id, actor=user)
            return None
        if outcome is Tally.REJECTED and started(self._store.steps(job.id)):
            # A job sent back for fresh approval after some steps ran: a reject undoes them.
            self._audit.record_job("rejection", job, actor=user)
            await self._engine.abort(job.id, actor=user, from_states=[JobState.PENDING_APPROVAL])
            return None
        if outcome is Tally.REJECTED and self._store.transition(
            job.id,
            from_states=[JobState.PENDING_APPROVAL],
            to=JobState.REJECTED,
            finished_at=utcnow(),
            outcome=f"Rejected by <@{user}>.",
        ):
            self._audit.record_job("rejection", job, actor=user)
        await self._refresh_root(job.id)
        return None

    async def _may_vote(self, job: Job, *, user: str, approve: bool, digest: str) -> str | None:
        """Why this vote cannot count, in the voter's words; None when it can."""
        if job.state is not JobState.PENDING_APPROVAL:
            state = job.state.value.lower().replace("_", " ")
            return f"Job #{job.id} is already {state}; your vote was not counted."
        if digest != job.plan_digest:
            return (
                f"The plan of job #{job.id} changed since that message; "
                "vote on the updated message."
            )
        if not within(utcnow(), job.approval_deadline):
            await self.expire(job)
            self._audit.record_job("refusal", job, actor=user, reason="approval window closed")
            return (
                f"The approval window of job #{job.id} closed at "
                f"{job.approval_deadline:%H:%M} UTC; request it again."
            )
        rule = self._access.rule(job.verb, job.cluster)
        roles = await self._access.roles(user)
        decision = may_vote(rule, voter=user, voter_roles=roles, requester=job.requester)
        if decision.allowed:
            return None
        self._audit.record_job(
            "refusal",
            job,
            actor=user,
            reason=decision.reason,
            vote="approve" if approve else "reject",
        )
        return decision.reason

    async def control(self, job: Job, *, user: str, action_id: str) -> str | None:
        """[Resume]/[Retry step] and [Abort] on a halted job: the same rules as /kube retry|cancel."""
        verb = "cancel" if action_id == ABORT else "retry"
        if not await responsible(self._access, job, user=user, verb=verb):
            self._audit.record_job("refusal", job, actor=user, reason=f"not allowed to {action_id}")
            return f"Only the requester or an approver of job #{job.id} may do that."
        if action_id == ABORT:
            done = await self._engine.abort(job.id, actor=user, from_states=HALTED)
        else:
            refusal = retry_refusal(self._engine, self._store, job)
            if refusal:
                return refusal
            done = await self._engine.resume(job.id, actor=user, from_states=HALTED)
        if not done:
            return f"Job #{job.id} is {job.state.value.lower()}; nothing to do."
        return None

    async def acknowledge_review(self, job: Job, *, user: str) -> str | None:
        """Someone other than the requester, holding an approver role, looked at a break-glass run."""
        rule = self._access.rule(job.verb, job.cluster)
        roles = await self._access.roles(user)
        decision = may_vote(rule, voter=user, voter_roles=roles, requester=job.requester)
        if not decision.allowed:
            self._audit.record_job(
                "refusal", job, actor=user, reason="may not acknowledge this review"
            )
            if user == job.requester:
                return "You ran this break-glass change yourself: someone else must review it."
            roles_named = " or ".join(f"`{r}`" for r in rule.approvers) if rule else "an approver"
            return f"Only {roles_named} may acknowledge this review."
        if not self._store.acknowledge_review(job.id, user):
            return f"The review of job #{job.id} was already acknowledged."
        self._audit.record_job("break-glass.reviewed", job, actor=user)
        await self._refresh_root(job.id)
        return None

    async def expire(self, job: Job) -> None:
        await expire(self._store, self._audit, self._refresh_root, job)


async def expire(store: Store, audit: AuditLog, refresh_root: RootRefresher, job: Job) -> None:
    if store.transition(
        job.id,
        from_states=[JobState.PENDING_APPROVAL],
        to=JobState.EXPIRED,
        finished_at=utcnow(),
        outcome="The approval window closed without enough approvals.",
    ):
        audit.record_job("expiry", job, actor="system")
        await refresh_root(job.id)


async def expire_overdue(store: Store, audit: AuditLog, refresh_root: RootRefresher) -> None:
    for job in store.jobs_in([JobState.PENDING_APPROVAL]):
        if not within(utcnow(), job.approval_deadline):
            await expire(store, audit, refresh_root, job)


async def recover_interrupted(
    store: Store, audit: AuditLog, chat: Chat, refresh_root: RootRefresher
) -> None:
    """After a restart: jobs that were running (or about to) are shown as INTERRUPTED."""
    for job in store.jobs_in([JobState.RUNNING, JobState.APPROVED]):
        if not store.transition(
            job.id, from_states=[JobState.RUNNING, JobState.APPROVED], to=JobState.INTERRUPTED
        ):
            continue
        audit.record_job("job.interrupted", job, actor="system", was=job.state.value)
        await refresh_root(job.id)
        if job.root_ts:
            card = interrupted_card(store.job(job.id), store.steps(job.id))
            await chat.post(job.channel, card, thread_ts=job.root_ts)
