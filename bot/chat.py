"""What kubegate needs from a chat: post, update in place, reply in a thread, speak privately.

Slack (bot/slack_app.py) and the terminal console (bot/console.py) both implement it; the
service and engine only ever see this interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

APPROVE = "kubegate.approve"
REJECT = "kubegate.reject"
RESUME = "kubegate.resume"
ABORT = "kubegate.abort"
RETRY = "kubegate.retry"
REVIEW = "kubegate.review"
ALERT_CORDON = "kubegate.alert.cordon"
ALERT_DRAIN = "kubegate.alert.drain"
ALERT_SILENCE = "kubegate.alert.silence"
SILENCE_CONFIRM = "kubegate.silence.confirm"
SILENCE_APPROVE = "kubegate.silence.approve"
SILENCE_REJECT = "kubegate.silence.reject"


@dataclass(frozen=True)
class Button:
    label: str
    action_id: str
    value: str
    style: Literal["primary", "danger"] | None = None


@dataclass(frozen=True)
class Card:
    """A message: a headline (also the notification text), mrkdwn sections, buttons."""

    headline: str
    sections: list[str] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join([self.headline, *self.sections])


class ChannelPoster(Protocol):
    """The part of a chat that periodic warnings need: post a message to a channel."""

    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str: ...


class Chat(Protocol):
    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str:
        """Post a message (a thread reply when thread_ts is given); returns its ts."""
        ...

    async def update(self, channel: str, ts: str, card: Card) -> None: ...

    async def ephemeral(self, channel: str, user: str, text: str) -> None: ...

    async def ephemeral_card(self, channel: str, user: str, card: Card) -> None:
        """A private message with buttons (a confirmation only the clicker sees)."""
        ...

    async def group_members(self, group_id: str) -> set[str]: ...

    async def upload(self, channel: str, thread_ts: str, *, title: str, content: str) -> None:
        """Share long output as a file in the thread."""
        ...
