"""`/kube cancel <id>` and `/kube retry <id>`: job control by the people responsible for a job.

The requester, an approver of the job's verb, or whoever the policy lets request `cancel` /
`retry` may use them; every use is audited.
"""

from __future__ import annotations

from bot.access import Access
from bot.audit import AuditLog
from bot.chat import Chat
from bot.engine import Engine, RootRefresher
from bot.gates import Stop, gate, started
from bot.store import END_STATES, Job, JobState, Store, utcnow
from bot.work import Asker, Spawner
from commands import CancelCommand, RetryCommand

WAITING = [JobState.PENDING_APPROVAL, JobState.APPROVED, JobState.SCHEDULED]
HALTED = [JobState.INTERRUPTED, JobState.FAILED]


async def responsible(access: Access, job: Job, *, user: str, verb: str) -> bool:
    return await access.responsible(
        user=user, requester=job.requester, job_verb=job.verb, cluster=job.cluster, verb=verb
    )


def relock(store: Store, job: Job) -> str | None:
    """A halted job keeps its locks; take them again all the same before it runs (a job halted
    by a kubegate before that rule released them), or say who holds them now."""
    held = store.acquire_locks(job.id, job.cluster, job.plan.get("locks", []))
    if held is not None:
        return f"Job #{held} now holds a lock job #{job.id} needs; wait for it to end."
    return None


def retry_refusal(engine: Engine, store: Store, job: Job) -> str | None:
    """Why a retry of a halted job cannot start now (a freeze, a lock someone else took), in
    the words of the person retrying; None when it may."""
    return engine.retry_refusal(job.id) or relock(store, job)


def sent_back_for_approval(store: Store, job: Job) -> str | None:
    """What the person retrying hears when the retry only sends the job back for a fresh
    approval (its execution window closed): never "Retrying…" for a job that will not run yet.
    A freeze was refused before this; drift is found later, against the live cluster."""
    stop = gate(job, now=utcnow(), freeze=None, started=started(store.steps(job.id)), retry=True)
    if stop is None or stop.stop is not Stop.REAPPROVE or not job.approvals_needed:
        return None
    return f"{stop.reason} Nothing ran now: its message asks for the approval."


class JobControl:
    def __init__(
        self,
        *,
        store: Store,
        audit: AuditLog,
        chat: Chat,
        access: Access,
        engine: Engine,
        refresh_root: RootRefresher,
        spawner: Spawner,
    ) -> None:
        self._store = store
        self._audit = audit
        self._chat = chat
        self._access = access
        self._engine = engine
        self._refresh_root = refresh_root
        self._spawner = spawner

    async def control(
        self, command: CancelCommand | RetryCommand, *, user: str, channel: str
    ) -> None:
        job = self._store.find_job(command.job_id)
        if job is None:
            await self._chat.ephemeral(
                channel, user, f"There is no job #{command.job_id}. `/kube jobs` lists recent ones."
            )
            return
        if channel != job.channel:
            # Like its request and its votes, a job's control happens where its channel sees it.
            self._audit.record_job(
                "refusal", job, actor=user, reason=f"{command.verb} from another channel {channel}"
            )
            await self._chat.ephemeral(
                channel,
                user,
                f"Job #{job.id} belongs to <#{job.channel}>: {command.verb} it there.",
            )
            return
        if not await responsible(self._access, job, user=user, verb=command.verb):
            self._audit.record_job(
                "refusal", job, actor=user, reason=f"may not {command.verb} this job"
            )
            await self._chat.ephemeral(
                channel,
                user,
                f"Only the requester or an approver of job #{job.id} may {command.verb} it.",
            )
            return
        self._audit.record_job(command.verb, job, actor=user)
        answer = await (
            self.cancel(job, user=user)
            if isinstance(command, CancelCommand)
            else self.retry(job, user=user)
        )
        await self._chat.ephemeral(channel, user, answer)

    async def cancel(self, job: Job, *, user: str) -> str:
        if job.state in END_STATES:
            return f"Job #{job.id} already ended ({job.state.value}); nothing to cancel."
        if job.state in WAITING and started(self._store.steps(job.id)):
            # Sent back for a fresh approval after some steps ran: cancelling undoes them.
            asker = Asker(user, job.channel, f"cancel {job.id}", f"aborting job #{job.id}", job.id)
            self._spawner.spawn(self._engine_abort(job.id, user, WAITING), asker=asker)
            return f"Job #{job.id} is being aborted: kubegate undoes what it changed."
        cancelled = job.state in WAITING and self._store.transition(
            job.id,
            from_states=WAITING,
            to=JobState.CANCELLED,
            finished_at=utcnow(),
            outcome=f"Cancelled by <@{user}> before it ran.",
        )
        if cancelled:
            await self._refresh_root(job.id)
            return f"Job #{job.id} cancelled; it never ran."
        if job.state is JobState.RUNNING:
            self._engine.request_cancel(job.id)
            return f"Job #{job.id} will stop at its next safe point and undo what it changed."
        if job.state in HALTED:
            asker = Asker(user, job.channel, f"cancel {job.id}", f"aborting job #{job.id}", job.id)
            self._spawner.spawn(self._engine_abort(job.id, user), asker=asker)
            return f"Job #{job.id} is being aborted: kubegate undoes what it changed."
        return f"Job #{job.id} is {job.state.value}; try again in a moment."

    async def retry(self, job: Job, *, user: str) -> str:
        if job.state not in HALTED:
            return (
                f"Only a failed or interrupted job can be retried; job #{job.id} is "
                f"{job.state.value}."
            )
        refusal = retry_refusal(self._engine, self._store, job)
        if refusal:
            return refusal
        asker = Asker(user, job.channel, f"retry {job.id}", f"retrying job #{job.id}", job.id)
        self._spawner.spawn(self._engine_resume(job.id, user), asker=asker)
        return (
            sent_back_for_approval(self._store, job)
            or f"Retrying job #{job.id} from its first unfinished step."
        )

    async def _engine_resume(self, job_id: int, user: str) -> None:
        await self._engine.resume(job_id, actor=user, from_states=HALTED)

    async def _engine_abort(
        self, job_id: int, user: str, from_states: list[JobState] = HALTED
    ) -> None:
        await self._engine.abort(job_id, actor=user, from_states=from_states)
