"""Socket Mode: with an app token kubegate needs no public endpoint; Slack's requests arrive as
envelopes over the WebSocket kubegate opened, and the same flow works."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr

from bot.app import serve
from testbed.up import Testbed
from tests.e2e.conftest import settings_for
from tests.e2e.slack_steps import CHANNEL, click, request, unschedulable, wait_ephemeral, wait_text


async def test_a_cordon_through_socket_mode_without_any_public_url(
    testbed: Testbed, tmp_path: Path
) -> None:
    settings = settings_for(testbed, tmp_path / "kubegate.db").model_copy(
        update={"slack_app_token": SecretStr(testbed.slack.app_token)}
    )
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop=stop))
    try:
        async with asyncio.timeout(20):
            await testbed.slack.socket.connected_event.wait()
        assert testbed.slack.app_url is None  # nothing is sent over HTTP
        await testbed.slack.user("U0ALICE").slash("/kube frobnicate", channel=CHANNEL)
        await wait_ephemeral(testbed, "U0ALICE", "/kube help")
        root = await request(testbed, "U0ALICE", "cordon worker-2")
        await click(testbed, "U0BOB", root, "Approve")
        await wait_text(testbed, root.ts, "SUCCEEDED")
        assert await unschedulable(testbed, "worker-2") == "true"
        assert testbed.slack.delivery.sent == []  # every request went over the socket
    finally:
        stop.set()
        await asyncio.wait_for(server, timeout=20)
