"""A running step's output, coalesced: its thread reply is updated at most every few seconds,
so a chatty command never floods the channel or trips Slack's rate limits.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from bot.redact import Redactor

TAIL_LINES = 15


class StepProgress:
    def __init__(
        self, *, show: Callable[[str], Awaitable[None]], redactor: Redactor, interval: float = 3.0
    ) -> None:
        self._show = show
        self._redactor = redactor
        self._interval = interval
        self._lines: list[str] = []
        self._last_shown = time.monotonic()
        self._dirty = False
        self.updates = 0

    async def line(self, text: str) -> None:
        self._lines.append(self._redactor.text(text.rstrip("\n")))
        del self._lines[:-TAIL_LINES]
        self._dirty = True
        if time.monotonic() - self._last_shown >= self._interval:
            await self.flush()

    async def flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self._last_shown = time.monotonic()
        self.updates += 1
        await self._show("\n".join(self._lines))
