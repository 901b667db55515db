"""Sending the outbox to Slack: one letter at a time per thread, in the order stored.

A 5xx, a 429, a timeout or a lost connection leaves the letter (and the rest of its thread)
waiting: retried with exponential backoff, or after the `Retry-After` Slack asked for. An
answer Slack will never accept (`channel_not_found`, `message_not_found`, …) is logged and
given up, so one bad message cannot hold its thread for ever. Other threads go on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.chat import Chat
from bot.outbox import Letter, OutboxRows

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
IDLE_WAKE = 5.0  # look again at least this often (a row another process stored, a claim ended)


class Undeliverable(Exception):
    """Slack answered that this letter can never be sent as it is."""


# What Slack says with `ok: false` when the trouble is its own, not the call's.
SLACK_TROUBLE = frozenset({"ratelimited", "internal_error"})


def slack_failing(error: Exception) -> bool:
    """Slack itself failing (5xx, 429, a rate limit or an internal error, no answer), not a
    refusal of this one call, which Slack answers with `ok: false` (a channel kubegate is not
    in): the former is worth trying again, the latter never."""
    if isinstance(error, SlackApiError):
        response = error.response
        status = getattr(response, "status_code", 200)
        return status >= 500 or status == 429 or response.get("error") in SLACK_TROUBLE
    return isinstance(error, (aiohttp.ClientError, TimeoutError, OSError))


def retry_after(error: Exception, attempts: int) -> float | None:
    """How long to wait before trying `error`'s letter again; None: never (give it up)."""
    if not slack_failing(error):
        return None
    if isinstance(error, SlackApiError) and getattr(error.response, "status_code", 200) == 429:
        headers = getattr(error.response, "headers", {}) or {}
        value = headers.get("Retry-After") or headers.get("retry-after") or "1"
        with contextlib.suppress(ValueError):
            return max(float(value), 0.5)
        return 1.0
    backoff: float = min(MAX_BACKOFF, 0.5 * 2.0**attempts)
    return backoff * random.uniform(0.8, 1.2)  # noqa: S311 — jitter, not a secret


class OutboxDelivery:
    def __init__(self, rows: OutboxRows, chat: Chat, *, owner: str | None = None) -> None:
        self._rows = rows
        self._chat = chat
        self.owner = owner or uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sending; call it only in the process that owns the jobs (bot/lease.py)."""
        if self._task is None:
            self._rows.release_claims()
            self._task = asyncio.create_task(self._run(), name="outbox delivery")

    async def stop(self, *, flush_for: float = 3.0) -> None:
        """Stop sending; first give what is waiting a short while to go out. What is left
        stays stored and is sent by the next start."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(flush_for):
                while self._rows.pending():
                    self._rows.sent.clear()
                    await self._rows.sent.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.deliver_due()
            except Exception:  # the database itself failing: said by the store's own checks
                log.exception("outbox: could not take what is waiting to be sent")
                sent = 0
            if not sent:
                await self._wait()

    async def _wait(self) -> None:
        self._rows.changed.clear()
        next_due = self._rows.next_due()
        wait = IDLE_WAKE if next_due is None else min(IDLE_WAKE, max(next_due - time.time(), 0))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._rows.changed.wait()

    async def deliver_due(self, *, now: float | None = None) -> int:
        """Send the letter at the head of each thread whose time has come; how many went."""
        letters = self._rows.due(now=time.time() if now is None else now, owner=self.owner)
        results = await asyncio.gather(*(self._deliver(letter) for letter in letters))
        return sum(results)

    async def _deliver(self, letter: Letter) -> bool:
        try:
            ts = await self._send(letter)
        except Undeliverable as error:
            self._give_up(letter, str(error))
            return False
        except Exception as error:
            wait = retry_after(error, letter.attempts)
            if wait is None:
                self._give_up(letter, describe(error))
                return False
            log.info(
                "outbox: Slack did not take message %s (%s); trying again in %.1f s",
                letter.id,
                describe(error),
                wait,
            )
            self._rows.retry_later(letter, after=wait, error=describe(error))
            return False
        self._rows.delivered(letter, ts)
        return True

    def _give_up(self, letter: Letter, error: str) -> None:
        log.warning("outbox: gave up message %s to %s: %s", letter.id, letter.channel, error)
        self._rows.given_up(letter, error=error)

    async def _send(self, letter: Letter) -> str | None:
        target, known = self._rows.resolve(letter.target)
        if not known:
            raise Undeliverable("the message it belongs to could not be sent")
        if letter.kind == "post":
            return await self._chat.post(letter.channel, letter.card, thread_ts=target)
        assert target is not None
        if letter.kind == "update":
            await self._chat.update(letter.channel, target, letter.card)
        else:
            body = letter.body
            await self._chat.upload(
                letter.channel, target, title=body["title"], content=body["content"]
            )
        return None


def describe(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", "?")
        return f"HTTP {status} {error.response.get('error') or ''}".strip()
    return f"{type(error).__name__}: {error}"[:200]
