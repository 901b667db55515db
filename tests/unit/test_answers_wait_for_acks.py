"""During a burst of commands, an answer starts between acks: while the chat edge is
acknowledging more than one request, an answer about to start waits (the ack has Slack's 3 s,
the answer has no deadline), but never longer than its longest wait; a lone ack holds nothing
back, and store-only answers and jobs never wait."""

from __future__ import annotations

import asyncio

from bot.work import Background


class Whispers:
    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        raise AssertionError(f"nothing here fails, yet {user} was told {text!r}")


async def a_few_loop_turns() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def answer(said: list[str], text: str) -> None:
    said.append(text)


async def test_during_a_burst_an_answer_waits_until_the_acks_are_sent() -> None:
    background = Background(chat=Whispers(), yields_s=60)
    said: list[str] = []

    with background.acknowledging():
        with background.acknowledging():
            background.answer_later(answer(said, "worker-1 Ready"))
            await a_few_loop_turns()
            assert said == []  # two acks are still being answered
        await asyncio.wait_for(background.answered(), timeout=30)

    assert said == ["worker-1 Ready"]


async def test_a_lone_ack_or_none_does_not_delay_an_answer() -> None:
    background = Background(chat=Whispers(), yields_s=60)
    said: list[str] = []

    with background.acknowledging():
        background.answer_later(answer(said, "worker-1 Ready"))
        await asyncio.wait_for(background.answered(), timeout=30)
    background.answer_later(answer(said, "worker-2 Ready"))
    await asyncio.wait_for(background.answered(), timeout=30)

    assert said == ["worker-1 Ready", "worker-2 Ready"]


async def test_a_steady_stream_of_acks_delays_answers_but_never_starves_them() -> None:
    background = Background(chat=Whispers(), yields_s=0.05)
    said: list[str] = []

    with background.acknowledging(), background.acknowledging():  # a burst that never ends
        background.answer_later(answer(said, "first"))
        background.answer_later(answer(said, "second"))
        await asyncio.wait_for(background.answered(), timeout=30)  # each after its wait

    assert said == ["first", "second"]


async def test_store_only_answers_and_jobs_do_not_wait_for_acks() -> None:
    background = Background(chat=Whispers(), yields_s=60)
    said: list[str] = []

    with background.acknowledging(), background.acknowledging():
        background.answer_now(answer(said, "job #4 RUNNING"))
        background.spawn(answer(said, "step 2 started"))
        await asyncio.wait_for(background.idle(), timeout=30)

    assert sorted(said) == ["job #4 RUNNING", "step 2 started"]


async def test_answered_does_not_wait_for_a_running_job() -> None:
    background = Background(chat=Whispers())
    job_may_end = asyncio.Event()
    said: list[str] = []

    async def job() -> None:  # runs on past the answers
        await job_may_end.wait()

    background.spawn(job())
    background.answer_later(answer(said, "worker-1 Ready"))
    await asyncio.wait_for(background.answered(), timeout=30)

    assert said == ["worker-1 Ready"]
    job_may_end.set()
    await asyncio.wait_for(background.idle(), timeout=30)
