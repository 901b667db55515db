"""The engine: runs an approved job's steps in order, checkpointing each one.

Every transition is written to the store (and the audit log) before anything is said in chat.
The first failed step halts the job; abort runs the compensation of the steps that finished.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable

from approvals import Freeze, Windows, drift, within
from bot.audit import AuditLog
from bot.chat import Card, Chat
from bot.clusters import Clusters
from bot.markup import fenced
from bot.progress import TAIL_LINES, StepProgress
from bot.render import failure_card, step_card
from bot.store import Job, JobState, Store, utcnow
from playbooks import PLAYBOOKS, OperationError, Plan, PlanError, Step, StepContext, StepResult

log = logging.getLogger(__name__)

RootRefresher = Callable[[int], Awaitable[None]]


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        audit: AuditLog,
        chat: Chat,
        clusters: Clusters,
        windows: Windows,
        refresh_root: RootRefresher,
        active_freeze: Callable[[str], Freeze | None] = lambda cluster: None,
    ) -> None:
        self._store = store
        self._active_freeze = active_freeze
        self._windows = windows
        self._audit = audit
        self._chat = chat
        self._clusters = clusters
        self._refresh_root = refresh_root
        self._cancel_requested: set[int] = set()
        self._current: dict[int, tuple[asyncio.Task[StepResult], Step]] = {}

    async def start(self, job_id: int) -> None:
        """Run a freshly approved job: re-check the plan against the live cluster first."""
        if not self._store.transition(job_id, from_states=[JobState.APPROVED], to=JobState.RUNNING):
            return  # someone else started it (a double click, a retried delivery)
        job = self._store.job(job_id)
        self._audit.record_job("job.start", job, actor="system")
        await self._begin(job)

    async def resume(self, job_id: int, *, actor: str, from_states: list[JobState]) -> bool:
        """Resume (after a restart) or retry (after a failure) at the first unfinished step."""
        if not self._store.transition(job_id, from_states=from_states, to=JobState.RUNNING):
            return False
        job = self._store.job(job_id)
        self._audit.record_job("job.resume", job, actor=actor)
        steps = self._store.steps(job.id)
        if all(step.state == "pending" for step in steps):
            await self._begin(job)  # nothing ran yet: the pre-run checks still apply
            return True
        first = next((s.index for s in steps if s.state != "succeeded"), len(steps))
        await self._refresh_root(job.id)
        await self._run_from(job.id, first=first, check_done=True)
        return True

    async def _begin(self, job: Job) -> None:
        """The checks before the first step: execution window, then drift against the live cluster."""
        freeze = self._active_freeze(job.cluster)
        if freeze is not None and not job.break_glass:
            await self._halt(job, f"Change freeze `{freeze.name}` until {freeze.end:%Y-%m-%d %H:%M} UTC: "
                                  "nothing was changed. Retry after it ends.")  # fmt: skip
            return
        if job.execution_deadline and not within(utcnow(), job.execution_deadline):
            await self._finish(
                job, JobState.EXPIRED, "The execution window closed before the job could start."
            )
            return
        try:
            fresh = await self._replan(job)
        except PlanError as error:
            # The cluster changed so that the request cannot be planned at all any more.
            await self._finish(job, JobState.FAILED, "The cluster changed since approval: "
                               f"{error.message} Request it again if it is still needed.")  # fmt: skip
            return
        except OperationError as error:
            await self._halt(job, f"kubegate failed re-checking the plan before step 1: {error}")
            return
        if fresh.nothing_to_do:
            await self._finish(job, JobState.SUCCEEDED, f"Nothing done: {fresh.nothing_to_do}")
            return
        approved = Plan.model_validate(job.plan)
        changes = PLAYBOOKS[job.verb].drift(approved, fresh)
        if changes is None:
            changes = drift(approved.facts, fresh.facts)
        if changes:
            await self._ask_again(job, fresh, changes)
            return
        plan = Plan.model_validate(job.plan)
        self._store.add_steps(job.id, [(s.name, s.title) for s in plan.steps])
        await self._refresh_root(job.id)
        await self._run_from(job.id, first=0)

    async def abort(self, job_id: int, *, actor: str, from_states: list[JobState]) -> bool:
        """Undo what finished steps changed, newest first, then end the job as CANCELLED."""
        if not self._store.transition(job_id, from_states=from_states, to=JobState.RUNNING):
            return False
        job = self._store.job(job_id)
        self._audit.record_job("job.abort", job, actor=actor)
        await self._compensate_and_cancel(job, f"Aborted by <@{actor}>.")
        return True

    def request_cancel(self, job_id: int) -> None:
        """Stop a running job at its next safe point, then compensate. A step that is safe to
        stop midway (its remote command is ended) is stopped at once; others run to their end."""
        self._cancel_requested.add(job_id)
        work, step = self._current.get(job_id, (None, None))
        if work is not None and step is not None and step.stoppable:
            work.cancel()

    async def _compensate_and_cancel(self, job: Job, why: str) -> None:
        ctx = await self._context(job)
        steps = self._playbook_steps(job)
        undone: list[str] = []
        for record in reversed(self._store.steps(job.id)):
            if record.state != "succeeded":
                continue
            result = StepResult(ok=True, summary=record.summary or "", data=record.data)
            try:
                said = await steps[record.index].compensate(ctx, result)
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

    async def _run_from(self, job_id: int, *, first: int, check_done: bool = False) -> None:
        job = self._store.job(job_id)
        ctx = await self._context(job)
        steps = self._playbook_steps(job)
        for record in self._store.steps(job.id):
            if record.state == "succeeded":
                ctx.results[record.name] = StepResult(
                    ok=True, summary=record.summary or "", data=record.data
                )
        started = time.monotonic()
        for index in range(first, len(steps)):
            if job.id in self._cancel_requested:
                self._cancel_requested.discard(job.id)
                await self._compensate_and_cancel(job, f"Cancelled before step {index + 1}.")
                return
            result = await self._run_step(job, ctx, index, check_done=check_done and index == first)
            if not result.ok and job.id in self._cancel_requested:
                self._cancel_requested.discard(job.id)
                await self._compensate_and_cancel(job, f"Cancelled during step {index + 1}.")
                return
            if not result.ok:
                self._cancel_requested.discard(job.id)
                await self._halt(job, f"kubegate failed at step {index + 1}: {result.summary}")
                return
        self._cancel_requested.discard(job.id)
        took = time.monotonic() - started
        await self._finish(
            job, JobState.SUCCEEDED, f"All {len(steps)} step(s) done in {took:.1f} s."
        )

    async def _run_step(
        self, job: Job, ctx: StepContext, index: int, *, check_done: bool
    ) -> StepResult:
        step = self._playbook_steps(job)[index]
        total = len(ctx.plan.steps)
        self._store.step_started(job.id, index)
        self._audit.record_job("step.start", job, actor="system", step=index + 1, name=step.title)
        reply_ts = await self._post(job, step_card(self._store.steps(job.id)[index], total=total))
        progress = StepProgress(show=lambda tail: self._show_progress(job, reply_ts, index, total, tail),
                                redactor=self._audit.redactor)  # fmt: skip
        ctx.progress = progress.line
        ctx.partial = dict(self._store.steps(job.id)[index].data)
        ctx.checkpoint = lambda data: self._store.step_checkpoint(
            job.id, index, self._audit.redactor.scrub(data)
        )
        work = asyncio.create_task(self._attempt(job, step, ctx, index, check_done=check_done))
        self._current[job.id] = (work, step)
        try:
            result = await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # kubegate itself is stopping
            result = StepResult(
                ok=False, summary="stopped midway by a cancel", data={"cancelled": True}
            )
        finally:
            self._current.pop(job.id, None)
        result = self._masked(result)
        self._store.step_finished(
            job.id,
            index,
            ok=result.ok,
            summary=result.summary,
            output=result.output,
            data=result.data,
        )
        ctx.results[step.name] = result
        self._audit.record_job(
            "step.finish",
            job,
            actor="system",
            step=index + 1,
            name=step.title,
            ok=result.ok,
            summary=result.summary,
            output_sha256=hashlib.sha256(result.output.encode()).hexdigest(),
            result=result.data,
        )
        record = self._store.steps(job.id)[index]
        if reply_ts:
            await self._chat.update(job.channel, reply_ts, step_card(record, total=total))
            root_ts = self._root_ts(job)
            if result.output.count("\n") >= TAIL_LINES and root_ts:
                await self._chat.upload(job.channel, root_ts, title=f"job-{job.id} step {index + 1} output",
                                        content=result.output)  # fmt: skip
        return result

    async def _attempt(
        self, job: Job, step: Step, ctx: StepContext, index: int, *, check_done: bool
    ) -> StepResult:
        try:
            return (await step.already_done(ctx) if check_done else None) or await step.run(ctx)
        except OperationError as error:
            return StepResult(ok=False, summary=str(error))
        except Exception as error:  # ours: log with context, show a sentence, never a traceback
            log.exception("job %s step %s (%s) crashed", job.id, index + 1, step.title)
            return StepResult(
                ok=False, summary=f"internal error ({type(error).__name__}); see kubegate's log"
            )

    async def _show_progress(
        self, job: Job, reply_ts: str | None, index: int, total: int, tail: str
    ) -> None:
        if reply_ts:
            record = self._store.steps(job.id)[index]
            card = step_card(record, total=total)
            await self._chat.update(
                job.channel, reply_ts, Card(card.headline, [*card.sections, fenced(tail)])
            )

    def _masked(self, result: StepResult) -> StepResult:
        """Whatever a step returns passes the redactor before it is stored, audited or posted."""
        redactor = self._audit.redactor
        return StepResult(ok=result.ok, summary=redactor.text(result.summary),
                          output=redactor.text(result.output), data=redactor.scrub(result.data))  # fmt: skip

    async def _halt(self, job: Job, reason: str) -> None:
        """The first failure stops the job; the thread offers Retry and Abort."""
        await self._finish(job, JobState.FAILED, reason)
        label = PLAYBOOKS[job.verb].abort_label
        await self._post(job, failure_card(self._store.job(job.id), reason, abort_label=label))

    async def _finish(self, job: Job, state: JobState, outcome: str) -> None:
        self._store.transition(
            job.id, from_states=[JobState.RUNNING], to=state, finished_at=utcnow(), outcome=outcome
        )
        self._audit.record_job(
            "job.end",
            job,
            actor="system",
            state=state.value,
            outcome=outcome,
        )
        await self._refresh_root(job.id)

    async def _ask_again(self, job: Job, fresh: Plan, changes: list[str]) -> None:
        """The cluster moved since approval: the old votes no longer count."""
        self._store.transition(
            job.id,
            from_states=[JobState.RUNNING],
            to=JobState.PENDING_APPROVAL,
            plan=fresh.model_dump(mode="json"),
            plan_digest=fresh.digest,
            approval_deadline=utcnow() + self._windows.approval,
            approved_at=None,
            execution_deadline=None,
            outcome="The cluster changed since approval: "
            + "; ".join(changes)
            + ". Fresh approval needed.",
        )
        self._audit.record_job(
            "plan.drift",
            job,
            actor="system",
            changes=changes,
            plan_digest=fresh.digest,
        )
        await self._refresh_root(job.id)

    async def _replan(self, job: Job) -> Plan:
        cluster = await self._clusters.handle(job.cluster)
        return await PLAYBOOKS[job.verb].plan(job.command, cluster)

    async def _context(self, job: Job) -> StepContext:
        cluster = await self._clusters.handle(job.cluster)
        plan = Plan.model_validate(job.plan)

        async def say(text: str) -> None:
            await self._post_text(job, text)

        return StepContext(cluster=cluster, plan=plan, job_id=job.id, results={}, say=say,
                           secret=self._audit.redactor.register)  # fmt: skip

    def _playbook_steps(self, job: Job) -> list[Step]:
        return PLAYBOOKS[job.verb].steps(Plan.model_validate(job.plan), job.command)

    async def _post(self, job: Job, card: Card) -> str | None:
        root_ts = self._root_ts(job)
        if not root_ts:
            return None
        return await self._chat.post(job.channel, card, thread_ts=root_ts)

    def _root_ts(self, job: Job) -> str | None:
        # Read afresh: a click can reach us before the root message's ts was stored.
        return job.root_ts or self._store.job(job.id).root_ts

    async def _post_text(self, job: Job, text: str) -> None:
        await self._post(job, Card(headline=text))
