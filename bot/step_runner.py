"""Running one step of a job: record that it started, run it, record and report its result.

Recorded first (store and audit), then said in the job's thread: the order the design asks for.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from bot.audit import AuditLog
from bot.chat import Card, Chat
from bot.markup import fenced
from bot.progress import TAIL_LINES, StepProgress
from bot.render import step_card
from bot.store import Job, Store
from bot.store_health import StoreWrites
from playbooks import OperationError, Step, StepContext, StepResult

log = logging.getLogger(__name__)


class JobThread:
    """A job's thread under its root message: where steps and halts are reported."""

    def __init__(self, *, store: Store, chat: Chat) -> None:
        self._store = store
        self._chat = chat

    def root_ts(self, job: Job) -> str | None:
        # Read afresh: a click can reach us before the root message's ts was stored.
        return job.root_ts or self._store.job(job.id).root_ts

    async def post(self, job: Job, card: Card) -> str | None:
        root_ts = self.root_ts(job)
        if not root_ts:
            return None
        return await self._chat.post(job.channel, card, thread_ts=root_ts)

    async def say(self, job: Job, text: str) -> None:
        await self.post(job, Card(headline=text))


class StepRunner:
    def __init__(
        self,
        *,
        store: Store,
        audit: AuditLog,
        chat: Chat,
        thread: JobThread,
        writes: StoreWrites,
        fence: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._writes = writes  # a failed write pauses the job there, loudly
        self._fence = fence  # raises LeaseLost when another kubegate owns the jobs now
        self._audit = audit
        self._chat = chat
        self._thread = thread
        # The step each job is running now, so that a cancel can stop a stoppable one.
        self._current: dict[int, tuple[asyncio.Task[StepResult], Step]] = {}

    def stop(self, job_id: int) -> None:
        """Stop the job's running step at once if that is safe midway; otherwise let it end."""
        work, step = self._current.get(job_id, (None, None))
        if work is not None and step is not None and step.stoppable:
            work.cancel()

    async def run(
        self, job: Job, ctx: StepContext, step: Step, index: int, *, check_done: bool
    ) -> StepResult:
        total = len(ctx.plan.steps)
        self._fence()  # at every step transition: only the lease holder starts a step…
        reply_ts = await self._record_start(job, ctx, step, index)
        result = self._masked(await self._execute(job, ctx, step, index, check_done=check_done))
        self._fence()  # …or records its end (the new owner re-checks it on resume)
        await self._record_finish(job, ctx, step, index, result)
        await self._report(job, index, total=total, reply_ts=reply_ts, result=result)
        return result

    async def _record_start(self, job: Job, ctx: StepContext, step: Step, index: int) -> str | None:
        """Store and audit the start, post the step's reply, and wire its progress/checkpoints."""
        total = len(ctx.plan.steps)
        before = f"step {index + 1}"
        await self._writes.recorded(
            job, lambda: self._store.step_started(job.id, index), before=before
        )
        await self._writes.recorded(
            job,
            lambda: self._audit.record_job(
                "step.start", job, actor="system", step=index + 1, name=step.title
            ),
            before=before,
        )
        record = self._store.steps(job.id)[index]
        reply_ts = await self._thread.post(job, step_card(record, total=total))
        progress = StepProgress(
            show=lambda tail: self._show_progress(job, reply_ts, index, total, tail),
            redactor=self._audit.redactor,
        )
        ctx.progress = progress.line
        ctx.partial = dict(record.data)
        ctx.checkpoint = lambda data: self._checkpoint(job, index, data)
        return reply_ts

    def _checkpoint(self, job: Job, index: int, data: dict[str, Any]) -> None:
        """A step's own checkpoint; one that cannot be written is not fatal (the step's end
        records its data, and that write waits until it succeeds)."""
        try:
            self._store.step_checkpoint(job.id, index, self._audit.redactor.scrub(data))
        except sqlite3.OperationalError as error:
            self._writes.failed(error)

    async def _execute(
        self, job: Job, ctx: StepContext, step: Step, index: int, *, check_done: bool
    ) -> StepResult:
        work = asyncio.create_task(self._attempt(job, step, ctx, index, check_done=check_done))
        self._current[job.id] = (work, step)
        try:
            return await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # kubegate itself is stopping
            return StepResult(
                ok=False, summary="stopped midway by a cancel", data={"cancelled": True}
            )
        finally:
            self._current.pop(job.id, None)

    async def _attempt(
        self, job: Job, step: Step, ctx: StepContext, index: int, *, check_done: bool
    ) -> StepResult:
        try:
            if not check_done:
                return await step.run(ctx)
            await step.wait_for_leftovers(ctx)  # never the same command twice at once
            done = None if step.recheck_on_resume else await step.already_done(ctx)
            return done or await step.run(ctx)
        except OperationError as error:
            return StepResult(ok=False, summary=str(error))
        except Exception as error:  # ours: log with context, show a sentence, never a traceback
            log.exception("job %s step %s (%s) crashed", job.id, index + 1, step.title)
            return StepResult(
                ok=False, summary=f"internal error ({type(error).__name__}); see kubegate's log"
            )

    async def _record_finish(
        self, job: Job, ctx: StepContext, step: Step, index: int, result: StepResult
    ) -> None:
        before = f"the end of step {index + 1} is recorded"
        await self._writes.recorded(
            job,
            lambda: self._store.step_finished(
                job.id,
                index,
                ok=result.ok,
                summary=result.summary,
                output=result.output,
                data=result.data,
            ),
            before=before,
        )
        ctx.results[step.name] = result
        await self._writes.recorded(
            job,
            lambda: self._audit.record_job(
                "step.finish",
                job,
                actor="system",
                step=index + 1,
                name=step.title,
                ok=result.ok,
                summary=result.summary,
                output_sha256=hashlib.sha256(result.output.encode()).hexdigest(),
                result=result.data,
            ),
            before=before,
        )

    async def _report(
        self, job: Job, index: int, *, total: int, reply_ts: str | None, result: StepResult
    ) -> None:
        """The step's reply shows its outcome; long output goes up as a file beside it."""
        if not reply_ts:
            return
        record = self._store.steps(job.id)[index]
        await self._chat.update(job.channel, reply_ts, step_card(record, total=total))
        root_ts = self._thread.root_ts(job)
        if result.output.count("\n") >= TAIL_LINES and root_ts:
            await self._chat.upload(
                job.channel,
                root_ts,
                title=f"job-{job.id} step {index + 1} output",
                content=result.output,
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
        return StepResult(
            ok=result.ok,
            summary=redactor.text(result.summary),
            output=redactor.text(result.output),
            data=redactor.scrub(result.data),
        )
