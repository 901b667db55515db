"""The engine: runs an approved job's steps in order, checkpointing each one.

Every transition is written to the store (and the audit log) before anything is said in chat.
Every start passes the same gates (bot/gates.py, then drift against the live cluster): the
first start, a retry, a resume after a restart. The first failed step halts the job; abort runs
the compensation of the steps that finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from approvals import Freeze, Windows, drift
from bot.audit import AuditLog
from bot.chat import Chat
from bot.gates import Gate, Stop, changed, first_unfinished, gate, started
from bot.lease import fenced, owns_jobs
from bot.reapproval import Reapproval
from bot.render import failure_card
from bot.step_runner import JobThread, StepRunner
from bot.store import Job, JobState, Store, utcnow
from bot.store_health import StoreWrites
from playbooks import (
    PLAYBOOKS,
    ClusterHandle,
    OperationError,
    Plan,
    PlanError,
    Step,
    StepContext,
    StepResult,
    steps_of,
)
from playbooks.upgrade_room import with_control_plane_lock

RootRefresher = Callable[[int], Awaitable[None]]
log = logging.getLogger(__name__)


class ClusterHandles(Protocol):
    """The one thing the engine needs of bot.clusters.Clusters: a cluster's handle by name."""

    async def handle(self, name: str) -> ClusterHandle: ...


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        audit: AuditLog,
        chat: Chat,
        clusters: ClusterHandles,
        windows: Windows,
        refresh_root: RootRefresher,
        active_freeze: Callable[[str], Freeze | None] = lambda cluster: None,
        fence: Callable[[], None] = lambda: None,
        writes: StoreWrites | None = None,
    ) -> None:
        self._store = store
        self._fence = fence
        self._writes = writes or StoreWrites(chat=chat)
        self._active_freeze = active_freeze
        self._windows = windows
        self._audit = audit
        self._clusters = clusters
        self._refresh_root = refresh_root
        self._thread = JobThread(store=store, chat=chat)
        self._reapproval = Reapproval(
            store=store,
            audit=audit,
            windows=windows,
            refresh_root=refresh_root,
            thread=self._thread,
        )
        self._runner = StepRunner(
            store=store,
            audit=audit,
            chat=chat,
            thread=self._thread,
            writes=self._writes,
            fence=fence,
        )
        self._cancel_requested: set[int] = set()

    # Starting: the first start, a retry, a resume ------------------------------------------

    async def start(self, job_id: int) -> None:
        """Run an approved job: freshly approved, or approved again after a retry needed it."""
        if not owns_jobs(self._fence, job_id):
            return
        if not self._store.transition(job_id, from_states=[JobState.APPROVED], to=JobState.RUNNING):
            return  # someone else started it (a double click, a retried delivery)
        job = self._store.job(job_id)
        self._audit.record_job("job.start", job, actor="system")
        await fenced(job.id, self._run_checked(job, retry=False))

    async def resume(self, job_id: int, *, actor: str, from_states: list[JobState]) -> bool:
        """Resume (after a restart) or retry (after a failure) at the first unfinished step,
        through the same gates as the first start. False when the job was not in `from_states`.

        During a change freeze the job stays as it is, said in its thread; after its execution
        window closed, or when the cluster drifted, it goes back for a fresh approval.
        """
        job = self._store.find_job(job_id)
        if job is None or job.state not in from_states:
            return False
        stop = self._gate(job, retry=True)
        if stop is not None and stop.stop is Stop.REFUSE:
            self._audit.record_job("refusal", job, actor=actor, reason=stop.reason)
            await self._thread.say(job, f"🧊 {stop.reason}")
            return True
        if not owns_jobs(self._fence, job_id):
            return True
        if not self._store.transition(job_id, from_states=from_states, to=JobState.RUNNING):
            return False
        job = self._store.job(job_id)
        self._audit.record_job("job.resume", job, actor=actor)
        await fenced(job.id, self._run_checked(job, retry=True))
        return True

    def retry_refusal(self, job_id: int) -> str | None:
        """Why a retry of this job would be refused now (a change freeze), in words; None when
        it may go ahead (it may still need a fresh approval, which its message then asks for).
        For callers that answer the person retrying before the retry runs."""
        job = self._store.find_job(job_id)
        stop = self._gate(job, retry=True) if job is not None else None
        return stop.reason if stop is not None and stop.stop is Stop.REFUSE else None

    def _gate(self, job: Job, *, retry: bool) -> Gate | None:
        return gate(
            job,
            now=utcnow(),
            freeze=self._active_freeze(job.cluster),
            started=started(self._store.steps(job.id)),
            retry=retry,
        )

    async def _run_checked(self, job: Job, *, retry: bool) -> None:
        stop = self._gate(job, retry=retry)
        if stop is None:
            if started(self._store.steps(job.id)):
                await self._continue(job)
            else:
                await self._begin(job)
        elif stop.stop is Stop.EXPIRE:
            await self._finish(job, JobState.EXPIRED, stop.reason)
        elif stop.stop is Stop.REAPPROVE:
            await self._approve_again(job, Plan.model_validate(job.plan), stop.reason)
        else:  # HALT, or a freeze that began between a retry's click and its start
            await self._halt(job, stop.reason)

    async def _begin(self, job: Job) -> None:
        """Nothing ran yet: plan again from the live cluster and compare with what was approved."""
        try:
            fresh = await self._replan(job)
        except PlanError as error:
            # The cluster changed so that the request cannot be planned at all any more.
            await self._finish(
                job,
                JobState.FAILED,
                f"The cluster changed since approval: {error.message} "
                "Request it again if it is still needed.",
            )
            return
        except OperationError as error:
            await self._halt(job, f"kubegate failed re-checking the plan before step 1: {error}")
            return
        if fresh.nothing_to_do:
            await self._finish(job, JobState.SUCCEEDED, f"Nothing done: {fresh.nothing_to_do}")
            return
        approved = Plan.model_validate(job.plan)
        changes = self._drift(job, approved, fresh)
        if changes:
            await self._approve_again(job, fresh, changed(changes), changes=changes)
            return
        self._store.add_steps(job.id, [(s.name, s.title) for s in approved.steps])
        await self._refresh_root(job.id)
        await self._run_from(job.id, first=0)

    async def _continue(self, job: Job) -> None:
        """Some steps ran: re-check only what bears on the steps left (the playbook says what),
        then go on at the first unfinished step, first checking whether it already took effect.
        """
        records = self._store.steps(job.id)
        first = first_unfinished(records)
        approved = Plan.model_validate(job.plan)
        finished = frozenset(r.name for r in records if r.state == "succeeded")
        try:
            cluster = await self._clusters.handle(job.cluster)
            facts = await PLAYBOOKS[job.verb].facts_for_remaining(
                approved, cluster, finished=finished
            )
        except PlanError as error:
            await self._halt(job, f"The cluster changed since approval: {error.message}")
            return
        except OperationError as error:
            await self._halt(
                job, f"kubegate failed re-checking the plan before step {first + 1}: {error}"
            )
            return
        fresh = approved.model_copy(update={"facts": facts})
        changes = self._drift(job, approved, fresh)
        if changes:
            await self._approve_again(job, fresh, changed(changes), changes=changes)
            return
        await self._refresh_root(job.id)
        await self._run_from(job.id, first=first, check_done=True)

    def _drift(self, job: Job, approved: Plan, fresh: Plan) -> list[str]:
        changes = PLAYBOOKS[job.verb].drift(approved, fresh)
        return drift(approved.facts, fresh.facts) if changes is None else changes

    async def _approve_again(
        self, job: Job, plan: Plan, reason: str, *, changes: list[str] | None = None
    ) -> None:
        renewed = self._reapproval.renewed(job, plan)
        refusal = self._reapproval.lock_refusal(job, renewed)
        if refusal:
            await self._halt(job, f"{reason} {refusal}")
            return
        if job.approvals_needed:
            await self._reapproval.ask_again(job, renewed, reason, changes=changes)
            return
        job = self._reapproval.renew_without_votes(job, renewed, reason)
        if not changes:
            # Only the window was renewed: the drift gate still applies (once; a drift found
            # there comes back here with the fresh plan, checked).
            await self._run_checked(job, retry=False)
            return
        records = self._store.steps(job.id)
        if not started(records):
            self._store.add_steps(job.id, [(s.name, s.title) for s in renewed.steps])
        await self._refresh_root(job.id)
        await self._run_from(job.id, first=first_unfinished(records), check_done=started(records))

    # Undoing --------------------------------------------------------------------------------

    async def abort(self, job_id: int, *, actor: str, from_states: list[JobState]) -> bool:
        """Undo what finished steps changed, newest first, then end the job as CANCELLED.

        Abort passes no freeze, execution-window or approval gate, by decision: it only puts
        back the state from before this job. A freeze is there to stop new changes, not to keep
        a half-done one (a cordoned node, a half-drained one) in place until it ends; each
        compensation acts on the live state and leaves alone what someone else changed since
        (so drift cannot make an undo do harm); and only the people responsible for the job
        (its requester, its approvers) may abort it, each use audited.
        """
        if not owns_jobs(self._fence, job_id):
            return True
        if not self._store.transition(job_id, from_states=from_states, to=JobState.RUNNING):
            return False
        job = self._store.job(job_id)
        self._audit.record_job("job.abort", job, actor=actor)
        await fenced(job.id, self._compensate_and_cancel(job, f"Aborted by <@{actor}>."))
        return True

    def request_cancel(self, job_id: int) -> None:
        """Stop a running job at its next safe point, then compensate. A step that is safe to
        stop midway (its remote command is ended) is stopped at once; others run to their end."""
        self._cancel_requested.add(job_id)
        self._runner.stop(job_id)

    async def _compensate_and_cancel(self, job: Job, why: str) -> None:
        ctx = await self._context(job)
        steps = self._playbook_steps(job)
        undone: list[str] = []
        for record in reversed(self._store.steps(job.id)):
            step = steps[record.index]
            # A step that stopped midway is undone too when it can undo its own partial
            # progress (from its checkpoint: the nodes it cordoned so far).
            partial = record.state in {"failed", "running"} and step.undoes_partial
            if record.state != "succeeded" and not partial:
                continue
            result = StepResult(ok=not partial, summary=record.summary or "", data=record.data)
            try:
                said = await step.compensate(ctx, result)
            except OperationError as error:
                undone.append(f"could not undo step {record.index + 1}: {error}")
                continue
            if said:
                undone.append(said)
        self._audit.record_job("job.compensated", job, actor="system", undone=undone)
        await self._finish(
            job,
            JobState.CANCELLED,
            f"{why} " + ("; ".join(undone) if undone else "Nothing to undo."),
        )

    # Running --------------------------------------------------------------------------------

    async def _run_from(self, job_id: int, *, first: int, check_done: bool = False) -> None:
        job = self._store.job(job_id)
        ctx = await self._context(job)
        steps = self._playbook_steps(job)
        for record in self._store.steps(job.id):
            if record.state == "succeeded":
                ctx.results[record.name] = StepResult(
                    ok=True, summary=record.summary or "", data=record.data
                )
        began = time.monotonic()
        for index in range(first, len(steps)):
            if job.id in self._cancel_requested:
                self._cancel_requested.discard(job.id)
                await self._compensate_and_cancel(job, f"Cancelled before step {index + 1}.")
                return
            check = check_done and index == first
            result = await self._runner.run(job, ctx, steps[index], index, check_done=check)
            if not result.ok:
                await self._stop_after_failure(job, index, result)
                return
        self._cancel_requested.discard(job.id)
        took = time.monotonic() - began
        await self._finish(
            job, JobState.SUCCEEDED, f"All {len(steps)} step(s) done in {took:.1f} s."
        )

    async def _stop_after_failure(self, job: Job, index: int, result: StepResult) -> None:
        """A step failed: a cancel asked for meanwhile undoes the job, otherwise it halts."""
        if job.id in self._cancel_requested:
            self._cancel_requested.discard(job.id)
            await self._compensate_and_cancel(job, f"Cancelled during step {index + 1}.")
            return
        await self._halt(job, f"kubegate failed at step {index + 1}: {result.summary}")

    async def _halt(self, job: Job, reason: str) -> None:
        """The first failure stops the job; the thread offers Retry and Abort. It keeps its
        locks: a half-done change (a drained, half-upgraded node) is not anyone else's to touch
        until a retry finishes it or an abort undoes it. A cancel asked for meanwhile wins: the
        job is undone and ends, as its asker was told."""
        if job.id in self._cancel_requested:
            self._cancel_requested.discard(job.id)
            await self._compensate_and_cancel(job, f"Cancelled (it had stopped: {reason})")
            return
        await self._finish(job, JobState.FAILED, reason, keep_locks=True)
        label = PLAYBOOKS[job.verb].abort_label
        await self._thread.post(
            job, failure_card(self._store.job(job.id), reason, abort_label=label)
        )

    async def _finish(
        self, job: Job, state: JobState, outcome: str, *, keep_locks: bool = False
    ) -> None:
        self._fence()
        ended = "the job's end is recorded"
        await self._writes.recorded(
            job,
            lambda: self._store.transition(
                job.id,
                from_states=[JobState.RUNNING],
                to=state,
                keep_locks=keep_locks,
                finished_at=utcnow(),
                outcome=outcome,
            ),
            before=ended,
        )
        await self._writes.recorded(
            job,
            lambda: self._audit.record_job(
                "job.end", job, actor="system", state=state.value, outcome=outcome
            ),
            before=ended,
        )
        await self._refresh_root(job.id)

    async def _replan(self, job: Job) -> Plan:
        """The plan again from the live cluster, as the request planned it: holding the
        control-plane lock when it touches a control plane (bot/requests.py), so a drift that
        goes back for approval never drops that lock, nor misses one the cluster now needs."""
        cluster = await self._clusters.handle(job.cluster)
        plan = await PLAYBOOKS[job.verb].plan_command(job.command, cluster)
        if plan.nothing_to_do:
            return plan
        nodes = await cluster.kube.list_nodes()
        return with_control_plane_lock(plan, cluster.inventory, nodes)

    async def _context(self, job: Job) -> StepContext:
        cluster = await self._clusters.handle(job.cluster)

        async def say(text: str) -> None:
            await self._thread.say(job, text)

        return StepContext(
            cluster=cluster,
            plan=Plan.model_validate(job.plan),
            job_id=job.id,
            results={},
            say=say,
            secret=self._audit.redactor.register,
        )

    def _playbook_steps(self, job: Job) -> list[Step]:
        return steps_of(Plan.model_validate(job.plan))
