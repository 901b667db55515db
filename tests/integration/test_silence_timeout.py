"""An Alertmanager that takes the silence request and never answers: [Silence 1h] ends with a
sentence saying so after its timeout, instead of waiting for ever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from unittest import mock

import pytest
from aiohttp import web

from bot import silences
from bot.silences import SilenceError, create_silence


@pytest.fixture
async def hanging_alertmanager() -> AsyncIterator[str]:
    released = asyncio.Event()

    async def never_answers(_request: web.Request) -> web.Response:
        await released.wait()
        return web.json_response({"silenceID": "late"})

    app = web.Application()
    app.router.add_post("/api/v2/silences", never_answers)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        released.set()
        await runner.cleanup()


async def test_a_silence_on_a_hanging_alertmanager_fails_with_a_sentence(
    hanging_alertmanager: str,
) -> None:
    with (
        mock.patch.object(silences, "ALERTMANAGER_TIMEOUT_S", 0.3),
        pytest.raises(SilenceError) as refused,
    ):
        await create_silence(
            hanging_alertmanager,
            {"alertname": "NodeDown", "node": "worker-1"},
            duration=timedelta(hours=1),
            created_by="U0ALICE",
            comment="kubegate [Silence 1h]",
        )

    assert str(refused.value) == (
        "Alertmanager did not answer within 0.3 s; the silence was not set"
    )
