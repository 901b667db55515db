"""What the emulated Slack workspace shows: messages, threads, ephemerals and files per channel.

Pure bookkeeping with no I/O, so the Web API, response URLs and tests all read one record.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]


def with_block_ids(blocks: list[JsonDict]) -> list[JsonDict]:
    """Blocks as Slack stores them: each gets a random block_id when the app set none."""
    return [{"block_id": secrets.token_urlsafe(4), **block} for block in blocks]


def _block_text(block: JsonDict) -> str:
    parts: list[str] = []
    text = block.get("text")
    if isinstance(text, dict):
        parts.append(str(text.get("text", "")))
    for element in block.get("elements") or []:
        inner = element.get("text")
        if isinstance(inner, dict):
            parts.append(
                f"[{inner.get('text', '')}]"
                if element.get("type") == "button"
                else str(inner.get("text", ""))
            )
        elif isinstance(inner, str):
            parts.append(inner)
    for item in block.get("fields") or []:
        parts.append(str(item.get("text", "")))
    return " ".join(parts)


@dataclass
class SlackFile:
    """A file shared through the files.uploadV2 steps."""

    id: str
    filename: str
    title: str
    content: bytes = b""
    channel: str | None = None
    thread_ts: str | None = None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def to_json(self) -> JsonDict:
        return {
            "id": self.id,
            "name": self.filename,
            "title": self.title,
            "size": len(self.content),
            "content": self.text,
            "channel": self.channel,
            "thread_ts": self.thread_ts,
        }


@dataclass
class MessageVersion:
    """One earlier state of a message that was later replaced by an update."""

    text: str
    blocks: list[JsonDict]


@dataclass
class Message:
    """A message as a channel member would see it now; `updates` holds what it said before."""

    channel: str
    ts: str
    user: str
    text: str = ""
    blocks: list[JsonDict] = field(default_factory=list)
    thread_ts: str | None = None
    files: list[SlackFile] = field(default_factory=list)
    updates: list[MessageVersion] = field(default_factory=list)
    # For ephemerals: who alone sees it. None for messages everybody sees.
    visible_to: str | None = None
    # How it got here: "api", "ack" (an HTTP answer to a slash command) or "response_url".
    via: str = "api"
    deleted: bool = False

    @property
    def shown(self) -> str:
        """What a person reads: the blocks' text and button labels, or the plain text."""
        if not self.blocks:
            return self.text
        return "\n".join(filter(None, (_block_text(block) for block in self.blocks)))

    @property
    def versions(self) -> list[MessageVersion]:
        """Every state of the message, oldest first, ending with the current one."""
        return [*self.updates, MessageVersion(self.text, self.blocks)]

    def replace(self, *, text: str | None, blocks: list[JsonDict] | None) -> None:
        self.updates.append(MessageVersion(self.text, self.blocks))
        if text is not None:
            self.text = text
        if blocks is not None:
            self.blocks = with_block_ids(blocks)

    def to_json(self) -> JsonDict:
        return {
            "channel": self.channel,
            "ts": self.ts,
            "user": self.user,
            "text": self.text,
            "blocks": self.blocks,
            "thread_ts": self.thread_ts,
            "files": [f.to_json() for f in self.files],
            "updates": [{"text": v.text, "blocks": v.blocks} for v in self.updates],
            "visible_to": self.visible_to,
            "via": self.via,
            "deleted": self.deleted,
        }


class TsClock:
    """Slack-style timestamps ("1700000000.000100"): wall-clock based, unique and increasing."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        self._last = max(int(time.time() * 1_000_000), self._last + 1)
        return f"{self._last // 1_000_000}.{self._last % 1_000_000:06d}"


class Transcript:
    """Everything posted in the workspace, keyed the way Slack shows it."""

    def __init__(self, *, on_change: Callable[[], None] = lambda: None) -> None:
        self.clock = TsClock()
        self._top: dict[str, list[Message]] = {}
        self._replies: dict[tuple[str, str], list[Message]] = {}
        self._ephemerals: dict[str, list[Message]] = {}
        self._on_change = on_change

    def post(
        self,
        *,
        channel: str,
        user: str,
        text: str = "",
        blocks: list[JsonDict] | None = None,
        thread_ts: str | None = None,
        files: list[SlackFile] | None = None,
        visible_to: str | None = None,
        via: str = "api",
    ) -> Message:
        message = Message(
            channel=channel,
            ts=self.clock.next(),
            user=user,
            text=text,
            blocks=with_block_ids(blocks or []),
            thread_ts=thread_ts,
            files=files or [],
            visible_to=visible_to,
            via=via,
        )
        if visible_to is not None:
            self._ephemerals.setdefault(channel, []).append(message)
        elif thread_ts is not None:
            self._replies.setdefault((channel, thread_ts), []).append(message)
        else:
            self._top.setdefault(channel, []).append(message)
        self.changed()
        return message

    def changed(self) -> None:
        self._on_change()

    def messages(self, channel: str) -> list[Message]:
        return list(self._top.get(channel, []))

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        return list(self._replies.get((channel, thread_ts), []))

    def ephemerals(self, channel: str, user: str | None = None) -> list[Message]:
        found = self._ephemerals.get(channel, [])
        return [m for m in found if user is None or m.visible_to == user]

    def message(self, channel: str, ts: str) -> Message | None:
        """A top-level message or thread reply by its ts; ephemerals are not addressable."""
        for message in self._top.get(channel, []):
            if message.ts == ts:
                return message
        for (reply_channel, _), replies in self._replies.items():
            if reply_channel != channel:
                continue
            for message in replies:
                if message.ts == ts:
                    return message
        return None

    def ephemeral(self, channel: str, ts: str, user: str | None = None) -> Message | None:
        for message in self.ephemerals(channel, user):
            if message.ts == ts:
                return message
        return None

    def files(self, channel: str, thread_ts: str | None = None) -> list[SlackFile]:
        messages = self.replies(channel, thread_ts) if thread_ts else self.messages(channel)
        return [f for m in messages for f in m.files]

    def channels(self) -> list[str]:
        keys = {*self._top, *self._ephemerals, *(c for c, _ in self._replies)}
        return sorted(keys)

    def to_json(self, channel: str) -> JsonDict:
        """A channel's transcript with each thread nested under its parent."""
        top = []
        for message in self.messages(channel):
            entry = message.to_json()
            entry["replies"] = [r.to_json() for r in self.replies(channel, message.ts)]
            top.append(entry)
        orphans = [
            r.to_json()
            for (c, thread_ts), replies in self._replies.items()
            if c == channel and self.message(channel, thread_ts) is None
            for r in replies
        ]
        return {
            "channel": channel,
            "messages": top,
            "orphan_replies": orphans,
            "ephemerals": [m.to_json() for m in self.ephemerals(channel)],
        }
