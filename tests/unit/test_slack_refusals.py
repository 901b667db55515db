"""The edge's memory of refused and replayed requests: a flood of refusals logs a few lines and
then how many it left out; a slash command's signature is remembered for Slack's 5-minute
window and no longer."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.slack_app import SIGNATURE_WINDOW_S, RefusalLog, ReplayCache


def refused_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.slack_app"]


async def test_a_flood_of_refusals_logs_three_lines_then_counts_the_rest_once_the_window_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    refusals = RefusalLog(per_window=3, window_s=0.2)
    for _ in range(8):
        refusals.refused("bad signature", peer="127.0.0.1", size=10, timestamp="1")
    assert len(refused_lines(caplog)) == 3

    async def counted() -> None:
        while not any("suppressed" in line for line in refused_lines(caplog)):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(counted(), timeout=5)
    assert refused_lines(caplog)[3:] == [
        "suppressed 5 more refused requests to /slack/events in the last 0.2 s"
    ]


async def test_header_values_are_escaped_and_clipped_in_the_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    RefusalLog().refused("malformed timestamp", peer=None, size=None, timestamp="1\n" * 500)
    (line,) = refused_lines(caplog)
    assert "\n" not in line and len(line) < 200
    assert r"'1\n1\n" in line


def test_a_signature_is_a_replay_until_its_timestamp_leaves_slacks_window() -> None:
    now = [1_000_000.0]
    replays = ReplayCache(clock=lambda: now[0])
    expires = int(now[0]) + SIGNATURE_WINDOW_S
    assert replays.first_time("v0=abc", expires=expires)
    assert not replays.first_time("v0=abc", expires=expires)
    assert replays.first_time("v0=def", expires=expires)
    now[0] += SIGNATURE_WINDOW_S + 1
    # By now the signature check refuses the old timestamp; the cache has let it go.
    assert replays.first_time("v0=abc", expires=int(now[0]) + SIGNATURE_WINDOW_S)
