"""The real Alertmanager in the testbed: what its v4 webhooks to kubegate carry, how it groups and
resolves, a receiver moved by reload, and silences through its API v2."""

from __future__ import annotations

import asyncio
import datetime
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from testbed.alertmanager import WEBHOOK_TIMEOUT_S, Alertmanager

TOKEN = "am-webhook-token"
NODE_DOWN = {"alertname": "KubeNodeNotReady", "node": "worker-1", "severity": "critical"}


@dataclass(frozen=True)
class Webhook:
    authorization: str | None
    payload: dict[str, Any]


class Receiver:
    """Stands in for kubegate's /alerts/alertmanager: records each POST, answers `statuses` first."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.webhooks: asyncio.Queue[Webhook] = asyncio.Queue()
        self.statuses = list(statuses or [])
        self.url = ""
        app = web.Application()
        app.router.add_post("/alerts/alertmanager", self._receive)
        self._runner = web.AppRunner(app)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/alerts/alertmanager"

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def next(self, status: str | None = None) -> Webhook:
        """The next webhook (with `status`, if given, skipping others), or fail after a while."""
        async with asyncio.timeout(WEBHOOK_TIMEOUT_S):
            while True:
                webhook = await self.webhooks.get()
                if status is None or webhook.payload["status"] == status:
                    return webhook

    async def _receive(self, request: web.Request) -> web.Response:
        payload = await request.json()
        await self.webhooks.put(Webhook(request.headers.get("Authorization"), payload))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def alertmanager(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Alertmanager]:
    am = Alertmanager(tmp_path / "alertmanager", webhook_url=receiver.url, bearer_token=TOKEN)
    await am.start()
    try:
        yield am
    finally:
        await am.stop()


async def test_firing_alert_arrives_as_a_v4_webhook_with_the_bearer_token(
    alertmanager: Alertmanager, receiver: Receiver
) -> None:
    await alertmanager.fire(NODE_DOWN, {"summary": "worker-1 is NotReady"})
    webhook = await receiver.next()
    assert webhook.authorization == f"Bearer {TOKEN}"
    payload = webhook.payload
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "kubegate"
    assert payload["groupKey"]
    assert payload["externalURL"] == alertmanager.url
    assert payload["groupLabels"] == {"alertname": "KubeNodeNotReady", "node": "worker-1"}
    assert payload["commonLabels"] == NODE_DOWN
    [alert] = payload["alerts"]
    assert alert["labels"] == NODE_DOWN
    assert alert["annotations"] == {"summary": "worker-1 is NotReady"}
    assert alert["status"] == "firing"
    assert alert["fingerprint"]


async def test_resolving_sends_resolved_for_the_same_group(
    alertmanager: Alertmanager, receiver: Receiver
) -> None:
    await alertmanager.fire(NODE_DOWN)
    firing = (await receiver.next("firing")).payload
    await alertmanager.resolve(NODE_DOWN)
    resolved = (await receiver.next("resolved")).payload
    assert resolved["groupKey"] == firing["groupKey"]
    [alert] = resolved["alerts"]
    assert alert["status"] == "resolved"
    assert alert["fingerprint"] == firing["alerts"][0]["fingerprint"]
    assert alert["startsAt"] == firing["alerts"][0]["startsAt"]


async def test_alerts_with_the_same_alertname_and_node_arrive_as_one_group(
    alertmanager: Alertmanager, receiver: Receiver
) -> None:
    disk = {"alertname": "NodeDiskPressure", "node": "worker-2"}
    await alertmanager.fire({**disk, "mountpoint": "/"})
    await alertmanager.fire({**disk, "mountpoint": "/var/lib/containerd"})
    await alertmanager.fire({"alertname": "NodeDiskPressure", "node": "worker-3"})
    by_node: dict[str, dict[str, Any]] = {}
    while len(by_node) < 2:
        payload = (await receiver.next()).payload
        by_node[payload["groupLabels"]["node"]] = payload
    mountpoints = {alert["labels"]["mountpoint"] for alert in by_node["worker-2"]["alerts"]}
    assert mountpoints == {"/", "/var/lib/containerd"}
    assert by_node["worker-2"]["commonLabels"] == disk
    assert len(by_node["worker-3"]["alerts"]) == 1
    assert by_node["worker-2"]["groupKey"] != by_node["worker-3"]["groupKey"]


async def test_set_webhook_delivers_alerts_fired_before_kubegate_was_listening(
    tmp_path: Path, receiver: Receiver
) -> None:
    closed = socket.socket()  # bound, never listening: connections to it are refused
    closed.bind(("127.0.0.1", 0))
    nobody = f"http://127.0.0.1:{closed.getsockname()[1]}/alerts/alertmanager"
    am = Alertmanager(tmp_path / "alertmanager", webhook_url=nobody, bearer_token=TOKEN)
    await am.start()
    try:
        await am.fire(NODE_DOWN)
        async with asyncio.timeout(WEBHOOK_TIMEOUT_S):
            while await am.failed_webhook_requests() == 0:
                await asyncio.sleep(0.05)
        await am.set_webhook(receiver.url)
        webhook = await receiver.next("firing")
        assert webhook.authorization == f"Bearer {TOKEN}"
        assert webhook.payload["alerts"][0]["labels"] == NODE_DOWN
        assert receiver.url in am.config_path.read_text()
    finally:
        await am.stop()
        closed.close()


async def test_a_refused_webhook_is_sent_again(tmp_path: Path) -> None:
    receiver = Receiver(statuses=[503])
    await receiver.start()
    am = Alertmanager(tmp_path / "alertmanager", webhook_url=receiver.url, bearer_token=TOKEN)
    await am.start()
    try:
        await am.fire(NODE_DOWN)
        first, again = await receiver.next(), await receiver.next()
        assert again.payload["groupKey"] == first.payload["groupKey"]
        assert [a["fingerprint"] for a in again.payload["alerts"]] == [
            a["fingerprint"] for a in first.payload["alerts"]
        ]
        assert await am.failed_webhook_requests() == 1
    finally:
        await am.stop()
        await receiver.stop()


async def test_a_silence_created_through_api_v2_is_listed(alertmanager: Alertmanager) -> None:
    now = datetime.datetime.now(datetime.UTC)
    silence = {
        "matchers": [
            {"name": "alertname", "value": "KubeNodeNotReady", "isRegex": False, "isEqual": True},
            {"name": "node", "value": "worker-1", "isRegex": False, "isEqual": True},
        ],
        "startsAt": now.isoformat(),
        "endsAt": (now + datetime.timedelta(hours=1)).isoformat(),
        "createdBy": "kubegate (alice)",
        "comment": "Silence 1h from Slack",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{alertmanager.url}/api/v2/silences", json=silence) as response,
    ):
        assert response.status == 200, await response.text()
        silence_id = (await response.json())["silenceID"]
    [listed] = await alertmanager.silences()
    assert listed["id"] == silence_id
    assert listed["status"]["state"] == "active"
    assert listed["createdBy"] == "kubegate (alice)"
    assert listed["comment"] == "Silence 1h from Slack"
    assert {(m["name"], m["value"]) for m in listed["matchers"]} == {
        ("alertname", "KubeNodeNotReady"),
        ("node", "worker-1"),
    }
