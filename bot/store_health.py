"""When kubegate cannot write its database (disk full, read-only, I/O error): loud, never silent.

A job records every step transition before it goes on; a write that fails pauses the job right
there (a safe point: nothing further starts unrecorded), says so in its thread straight through
Slack (the outbox lives in the same database), fails `/readyz`, and tries the write again until
it succeeds; then the job goes on by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from bot.chat import Card, Chat
from bot.store import Job

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_AFTER = (0.5, 1.0, 2.0, 5.0)  # then every 5 s


class StoreWrites:
    def __init__(self, *, chat: Chat) -> None:
        self._chat = chat  # straight to Slack, not through the outbox
        self.problem: str | None = None  # why the last write failed, until one succeeds

    def failed(self, error: sqlite3.Error) -> None:
        """A write failed somewhere it can be skipped (a checkpoint, a progress line)."""
        self.problem = str(error)
        log.error("kubegate cannot write its database: %s", error)

    def succeeded(self) -> None:
        self.problem = None

    async def recorded(self, job: Job, write: Callable[[], T], *, before: str) -> T:
        """`write()`, retried until it succeeds; the job waits here meanwhile, said in its
        thread. `before`: what waits for the write, in words ("step 2", "the job's end")."""
        attempt = 0
        while True:
            try:
                result = write()
            except sqlite3.OperationalError as error:
                if attempt == 0:
                    await self._say_paused(job, error, before=before)
                delay = RETRY_AFTER[min(attempt, len(RETRY_AFTER) - 1)]
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if attempt:
                self.problem = None
                log.warning("kubegate can write its database again; job #%s goes on", job.id)
                await self._say(
                    job, f"✅ kubegate can write its database again; job #{job.id} goes on."
                )
            return result

    async def _say_paused(self, job: Job, error: sqlite3.Error, *, before: str) -> None:
        self.failed(error)
        await self._say(
            job,
            f"⚠️ kubegate cannot write its database: {error}. Job #{job.id} is paused before "
            f"{before} and goes on by itself once kubegate can record it (free space on the "
            "database's disk).",
        )

    async def _say(self, job: Job, text: str) -> None:
        if not job.root_ts:
            return
        with contextlib.suppress(Exception):  # Slack may be down too: the log has it
            await self._chat.post(job.channel, Card(text), thread_ts=job.root_ts)
