"""Work that outlives the chat request that started it, and what happens when it fails.

An adapter answers at once with `Ack.text` and hands `Ack.work` to `Background`. When that work
raises, the person who asked hears it privately, in their words, with a short reference that
also appears in kubegate's log next to the traceback: nothing fails silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from bot.markup import escape

log = logging.getLogger(__name__)
ANSWER_SLOTS = 2  # commands being planned or answered at once
# Slack's 3 s for an ack is a hard limit, an answer's timing is not: an answer about to start
# waits while a burst of acks is being answered, but never longer than this, so a steady stream
# of commands delays answers and never starves them.
ANSWER_YIELDS_S = 1.0
REASON_LIMIT = 160  # a short reason fits one line of an ephemeral; the log has the rest

Work = Coroutine[Any, Any, None]


@dataclass(frozen=True)
class Asker:
    """Who is waiting on a piece of work, and what they asked, for a failure report."""

    user: str
    channel: str
    command: str  # what they typed or clicked, as kubegate received it
    doing: str  # what kubegate was doing for them: "planning `cordon worker-1`"
    job_id: int | None = None


@dataclass
class Ack:
    """The immediate answer to a command, and the slow part to run after it."""

    text: str
    work: Work | None = None


class Whisperer(Protocol):
    """The one thing a failure report needs from a chat: a private message."""

    async def ephemeral(self, channel: str, user: str, text: str) -> None: ...


class Spawner(Protocol):
    def spawn(self, work: Work, *, asker: Asker | None = None) -> None: ...


class CommandReceiver(Protocol):
    """Whatever turns a typed command into an answer and its slow part (the service)."""

    def receive_command(self, *, user: str, channel: str, text: str) -> Ack: ...


def short_reason(error: BaseException) -> str:
    """One line about an exception of ours: its kind and the first line of what it said."""
    said = str(error).strip().splitlines()[0] if str(error).strip() else ""
    reason = f"{type(error).__name__}: {said}" if said else type(error).__name__
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 1] + "…"


def failure_ref() -> str:
    """Four hex digits: short enough to read out, enough to find the one log record."""
    return secrets.token_hex(2)


class Background:
    """Runs work outside the request, a few answers at a time, and reports what fails."""

    def __init__(
        self,
        *,
        chat: Whisperer,
        scrub: Callable[[str], str] = lambda text: text,
        slots: int = ANSWER_SLOTS,
        yields_s: float = ANSWER_YIELDS_S,
    ) -> None:
        self._chat = chat
        self._scrub = scrub  # an exception's text may carry a secret; Slack must not see it
        self._tasks: set[asyncio.Task[None]] = set()
        self._answers: set[asyncio.Task[None]] = set()  # commands' answers, a part of _tasks
        self._answer_slots = asyncio.Semaphore(slots)
        self._acks = AcksInFlight(yields_s)

    def spawn(self, work: Work, *, asker: Asker | None = None) -> None:
        """Run `work` now; a failure is told to `asker` (if someone waits on it) and logged."""
        if asker is not None:
            work = self.reported(work, asker)
        self._keep(asyncio.create_task(self._guarded(work)))

    def answer_later(self, work: Work) -> None:
        """A command's slow part (planning, reading the cluster). Few run at once, and during a
        burst each starts between acks, so a burst of commands cannot starve the event loop that
        acknowledges the next ones within Slack's 3 s."""
        self._keep(asyncio.create_task(self._guarded(self._in_turn(work))), answer=True)

    def answer_now(self, work: Work) -> None:
        """An answer that needs only the store: never queued behind answers waiting on a cluster."""
        self._keep(asyncio.create_task(self._guarded(work)), answer=True)

    def acknowledging(self) -> contextlib.AbstractContextManager[None]:
        """Held by the chat edge while it answers a request within Slack's 3 s."""
        return self._acks.held()

    async def idle(self) -> None:
        """Wait until no background work is left (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def answered(self) -> None:
        """Wait until every command received so far has its answer out; jobs may still run."""
        while self._answers:
            await asyncio.gather(*list(self._answers), return_exceptions=True)

    async def reported(self, work: Work, asker: Asker) -> None:
        """Run `work`; if it raises, log it once with the asker's context and tell the asker."""
        try:
            await work
        except Exception as error:
            ref = failure_ref()
            log.error(
                "kubegate failed %s (ref %s): user %s, channel %s, command %r, job %s",
                asker.doing,
                ref,
                asker.user,
                asker.channel,
                asker.command,
                f"#{asker.job_id}" if asker.job_id is not None else "none",
                exc_info=error,
            )
            text = (
                f"kubegate failed {asker.doing}: {escape(self._scrub(short_reason(error)))}; "
                f"see kubegate's log, ref {ref}"
            )
            try:
                await self._chat.ephemeral(asker.channel, asker.user, text)
            except Exception:
                log.exception("could not tell %s about failure ref %s", asker.user, ref)

    def _keep(self, task: asyncio.Task[None], *, answer: bool = False) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if answer:
            self._answers.add(task)
            task.add_done_callback(self._answers.discard)

    async def _in_turn(self, work: Work) -> None:
        async with self._answer_slots:
            await self._acks.gone()
            await work

    @staticmethod
    async def _guarded(work: Work) -> None:
        """Work that nobody waits on (an alert, a timer): its failure goes to the log, with a ref."""
        try:
            await work
        except Exception:
            log.exception("background work failed (ref %s)", failure_ref())


class AcksInFlight:
    """How many chat requests are being acknowledged right now. During a burst (more than one at
    once) answers start between acks: on one event loop, CPU spent planning or reading a
    cluster is CPU an ack waits for. A lone ack does not hold answers back: Bolt polls for it
    every 10 ms, and an answer run in that pause costs it nothing (bench/RESULTS.md)."""

    BURST = 2

    def __init__(self, longest_wait_s: float) -> None:
        self._longest_wait_s = longest_wait_s
        self._count = 0
        self._calm = asyncio.Event()
        self._calm.set()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._count += 1
        if self._count >= self.BURST:
            self._calm.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count < self.BURST:
                self._calm.set()

    async def gone(self) -> None:
        """Return when no burst of acks is in flight, or after the longest wait."""
        if not self._calm.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._calm.wait(), self._longest_wait_s)
