"""Whether Slack's Web API takes kubegate's calls, as the last calls found: while it fails, the
one answer that still reaches a person is the acknowledgement of their slash command (it goes
back on the request itself, or over the Socket Mode connection), so that answer says so."""

from __future__ import annotations

import time

from bot.markup import escape
from bot.outbox_delivery import describe, slack_failing
from bot.render import ago


class SlackHealth:
    def __init__(self) -> None:
        self.failing_since: float | None = None
        self.last_error = ""

    def failed(self, error: Exception) -> None:
        if not slack_failing(error):
            return
        if self.failing_since is None:
            self.failing_since = time.time()
        self.last_error = describe(error)

    def answered(self) -> None:
        self.failing_since = None

    def note(self, *, now: float | None = None) -> str | None:
        """A line for a command's acknowledgement while Slack fails kubegate's calls."""
        if self.failing_since is None:
            return None
        since = ago((time.time() if now is None else now) - self.failing_since)
        return (
            f":warning: Slack has been refusing kubegate's messages for {since} (last: "
            f"{escape(self.last_error[:120])}). Jobs keep running and their messages are kept "
            "until Slack takes them; answers to commands may not reach you until then."
        )
