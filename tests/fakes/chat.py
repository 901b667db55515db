"""A chat that remembers what was said (bot.chat.Chat), for engine tests without Slack."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from bot.chat import Card


@dataclass
class RecordingChat:
    posts: list[tuple[str, Card, str | None]] = field(default_factory=list)
    updates: dict[str, Card] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str:
        self.posts.append((channel, card, thread_ts))
        return f"{next(self._ts)}.000"

    async def update(self, channel: str, ts: str, card: Card) -> None:
        self.updates[ts] = card

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        self.posts.append((channel, Card(headline=text), None))

    async def group_members(self, group_id: str) -> set[str]:
        return set()

    async def upload(self, channel: str, thread_ts: str, *, title: str, content: str) -> None:
        return None

    def thread(self) -> list[str]:
        """What was said in threads, in order."""
        return [card.text for _, card, thread_ts in self.posts if thread_ts]
