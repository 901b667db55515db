"""Background work that fails is never silent: the asker hears it with a ref, the log has it."""

from __future__ import annotations

import logging
import re
import sys

import pytest

from bot.redact import RedactingFilter, Redactor
from bot.work import Asker, Background

ASKER = Asker("U0ALICE", "C0OPS", "cordon worker-1", "planning `cordon worker-1`")


class Whispers:
    def __init__(self, *, broken: bool = False) -> None:
        self.said: list[tuple[str, str, str]] = []
        self.broken = broken

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        if self.broken:
            raise ConnectionError("Slack is down")
        self.said.append((channel, user, text))


async def crash() -> None:
    raise RuntimeError("the token s3cr3t-t0ken-value leaked into an error\nsecond line")


async def test_a_failure_is_told_to_the_asker_in_one_line_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chat = Whispers()
    background = Background(chat=chat, scrub=lambda text: text.replace("s3cr3t-t0ken-value", "…"))
    background.spawn(crash(), asker=ASKER)
    await background.idle()
    [(channel, user, text)] = chat.said
    assert (channel, user) == ("C0OPS", "U0ALICE")
    assert text.startswith("kubegate failed planning `cordon worker-1`: RuntimeError: the token …")
    assert "second line" not in text and "s3cr3t" not in text
    ref = re.search(r"ref ([0-9a-f]{4})$", text)
    assert ref is not None
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"ref {ref.group(1)}" in record.getMessage() and record.exc_info is not None


async def test_a_failure_nobody_waits_on_is_logged_and_the_rest_keeps_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chat = Whispers(broken=True)
    background = Background(chat=chat)
    background.spawn(crash(), asker=ASKER)
    background.answer_later(crash())
    await background.idle()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(messages) == 3  # the failure, the failed telling, the unasked failure
    assert any(m.startswith("could not tell U0ALICE") for m in messages)
    assert any(m.startswith("background work failed (ref ") for m in messages)


def test_a_logged_traceback_has_its_secrets_masked() -> None:
    redactor = Redactor()
    redactor.register("s3cr3t-t0ken-value")
    try:
        raise RuntimeError("login with s3cr3t-t0ken-value failed")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    RedactingFilter(redactor).filter(record)
    shown = logging.Formatter().format(record)
    assert "RuntimeError: login with [redacted] failed" in shown and "s3cr3t" not in shown
