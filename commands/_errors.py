"""The one error a user can cause while typing a `/kube` command, phrased for them."""

from __future__ import annotations


class CommandError(Exception):
    """A command kubegate cannot accept, with what to do next.

    `message` is complete on its own; `usage` is the verb's usage (for a code block) and
    `suggestion` the nearest verb when the verb itself was mistyped.
    """

    def __init__(
        self, message: str, *, suggestion: str | None = None, usage: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion
        self.usage = usage

    @property
    def text(self) -> str:
        """The whole answer for chat: the message, then the usage if there is one."""
        if self.usage is None:
            return self.message
        return f"{self.message}\nUsage:\n{self.usage}"
