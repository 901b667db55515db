"""The lexer reads long commands in time linear in their length (a 200 KB command once froze the
bot for 30 s), and splits exactly as shlex does."""

from __future__ import annotations

import contextlib
import random
import shlex
import time

import pytest

from commands import CommandError
from commands._lexer import split_like_a_shell, tokenize

# Inputs that made a pattern or shlex scan on to the end of the text from many starting points.
ADVERSARIAL = {
    "mentions": "<@UA|",
    "links": "<http:|",
    "a long word": "x" * 64,
    "quotes": 'a"b c" ',
    "escapes": "\\a",
}


def seconds_to_tokenize(text: str, *, times: int) -> float:
    """This thread's CPU seconds, not wall time: a machine busy with other work (CI runs two
    workers on two cores) would otherwise decide the comparison, not the lexer."""
    started = time.thread_time()
    for _ in range(times):
        with contextlib.suppress(CommandError):
            tokenize(text)
    return time.thread_time() - started


@pytest.mark.parametrize("unit", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_a_200_kb_command_is_read_in_well_under_a_second(unit: str) -> None:
    # Linear reads it in milliseconds; the quadratic patterns took 12 s for 100 KB.
    assert seconds_to_tokenize(unit * (200_000 // len(unit)), times=1) < 1.0


@pytest.mark.parametrize(
    "unit", [ADVERSARIAL[name] for name in ("mentions", "links", "a long word", "escapes")]
)
def test_one_long_command_takes_as_long_as_eight_of_an_eighth_its_length(unit: str) -> None:
    # The same number of characters either way: linear reads both alike, quadratic takes 8x as
    # long for the long one. Both sizes beyond the CPU's caches (small texts read faster), best
    # of three, interleaved so that a busy machine slows both alike.
    short, long = unit * (128_000 // len(unit)), unit * (1_024_000 // len(unit))
    eight_short = one_long = float("inf")
    for _ in range(3):
        eight_short = min(eight_short, seconds_to_tokenize(short, times=8))
        one_long = min(one_long, seconds_to_tokenize(long, times=1))
    assert one_long / eight_short < 3, f"{unit!r}: {one_long:.3f} s vs {eight_short:.3f} s"


def test_mentions_and_links_are_still_read_as_people_meant_them() -> None:
    assert tokenize("/kube cordon <@U0BOB|bob> <https://x.example|worker-1>") == [
        "cordon",
        "U0BOB",
        "worker-1",
    ]


def test_splitting_matches_shlex_on_thousands_of_random_commands() -> None:
    shuffle = random.Random(20261130)
    alphabet = "ab '\"\\\t\n-<>|@"
    for _ in range(20_000):
        text = "".join(shuffle.choice(alphabet) for _ in range(shuffle.randint(0, 14)))
        try:
            expected: list[str] | str = shlex.split(text, comments=False, posix=True)
        except ValueError as error:
            expected = str(error)
        try:
            got: list[str] | str = split_like_a_shell(text)
        except ValueError as error:
            got = str(error)
        assert got == expected, repr(text)
