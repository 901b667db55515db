"""A chatty step updates its thread reply a bounded number of times, secrets masked."""

from __future__ import annotations

from bot.progress import StepProgress
from bot.redact import Redactor


async def test_a_thousand_output_lines_make_a_handful_of_updates_showing_the_tail() -> None:
    shown: list[str] = []

    async def show(text: str) -> None:
        shown.append(text)

    redactor = Redactor()
    redactor.register("s3cr3t-token-value")
    progress = StepProgress(show=show, redactor=redactor, interval=3600)
    for number in range(1000):
        await progress.line(f"line {number} s3cr3t-token-value\n")
    await progress.flush()
    assert len(shown) == 1
    assert shown[-1].splitlines()[-1] == "line 999 [redacted]"
    assert len(shown[-1].splitlines()) == 15
    await progress.flush()
    assert len(shown) == 1  # nothing new, nothing sent
