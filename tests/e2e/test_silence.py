"""[Silence 1h] against the real Alertmanager: on a group whose only common label is
severity=critical it silences only the clicked alert, shows the matchers first, and needs what
the policy's `silence` rule says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.alertmanager import Alertmanager
from testbed.slack import Message
from testbed.up import Testbed, alerts_url
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import CHANNEL, audit_of, click, wait_ephemeral, wait_reply

KUBELET = {"alertname": "KubeletDown", "node": "worker-3", "severity": "critical", "job": "kubelet"}
ETCD = {"alertname": "EtcdNoLeader", "severity": "critical", "job": "etcd"}
SILENCE_RULE = {
    "verbs": ["silence"],
    "requesters": ["sre"],
    "approvals": 1,
    "approvers": ["sre", "lead"],
    "longest": "1h",
}


@dataclass
class World:
    testbed: Testbed
    kubegate: Served
    alertmanager: Alertmanager


@pytest.fixture
def silence_rule() -> dict[str, Any]:
    """Override with parametrize to serve kubegate with another `silence` rule."""
    return SILENCE_RULE


@pytest.fixture
async def world(
    testbed: Testbed, tmp_path: Path, silence_rule: dict[str, Any]
) -> AsyncIterator[World]:
    # Grouped by severity alone, as some teams do: unrelated alerts share one group.
    alertmanager = Alertmanager(
        tmp_path / "alertmanager",
        webhook_url="http://127.0.0.1:9/not-yet",
        bearer_token=testbed.alerts_token,
        group_by=["severity"],
    )
    await alertmanager.start()
    config = yaml.safe_load(testbed.config_path.read_text())
    changes = {
        "alerts": {"token": testbed.alerts_token, "alertmanager_url": alertmanager.url},
        "policy": [*config["policy"], silence_rule],
    }
    try:
        async with serving(testbed, tmp_path, changes) as served:
            assert testbed.slack.app_url is not None
            await alertmanager.set_webhook(alerts_url(testbed.slack.app_url))
            yield World(testbed, served, alertmanager)
    finally:
        await alertmanager.stop()


async def eventually(check: Callable[[], Any], timeout: float = 10) -> Any:
    """Poll Alertmanager's API until `check` (async) returns something truthy."""
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.1)
    return found


async def active_silences(alertmanager: Alertmanager) -> list[dict[str, Any]]:
    return [s for s in await alertmanager.silences() if s["status"]["state"] == "active"]


async def test_silence_1h_on_a_severity_group_silences_only_that_alert_after_showing_it(
    world: World,
) -> None:
    testbed, alertmanager = world.testbed, world.alertmanager
    await alertmanager.fire(KUBELET, {"summary": "kubelet on worker-3 stopped reporting"})
    await alertmanager.fire(ETCD, {"summary": "etcd has no leader"})
    alert = await testbed.slack.wait_for(
        lambda: next(
            (
                m
                for m in testbed.slack.messages(CHANNEL)
                if "stopped reporting" in m.shown and "no leader" in m.shown
            ),
            None,
        ),
        timeout=20,
    )
    assert "Labels: severity=critical" in alert.shown and "[Silence 1h]" in alert.shown

    await click(testbed, "U0DAVE", alert, "Silence 1h")  # no role: the policy says no
    await wait_ephemeral(testbed, "U0DAVE", "You may not request `silence`")

    await click(testbed, "U0ALICE", alert, "Silence 1h")
    shown = await wait_ephemeral(testbed, "U0ALICE", "check what it matches")
    assert 'alertname="KubeletDown"' in shown.shown and 'node="worker-3"' in shown.shown
    assert "EtcdNoLeader" not in shown.shown and "needs 1 approval(s)" in shown.shown
    assert await alertmanager.silences() == []  # shown first: nothing created yet

    await click(testbed, "U0ALICE", shown, "Create silence")
    request = await wait_reply(testbed, alert, "Silence for 1h requested by <@U0ALICE>")
    assert await alertmanager.silences() == []  # policy: one approval first
    await click(testbed, "U0ALICE", request, "Approve silence")
    await wait_ephemeral(testbed, "U0ALICE", "someone else must approve it")
    await click(testbed, "U0BOB", request, "Approve silence")
    await wait_reply(testbed, alert, "🔕 Silenced for 1h")

    [silence] = await eventually(lambda: active_silences(alertmanager))
    assert {(m["name"], m["value"], m["isEqual"]) for m in silence["matchers"]} == {
        (name, value, True) for name, value in KUBELET.items()
    }
    assert "U0ALICE" in silence["createdBy"]

    async def etcd_active_kubelet_silenced() -> bool:
        states = {a["labels"]["alertname"]: a["status"] for a in await alertmanager.alerts()}
        return (
            states["KubeletDown"]["silencedBy"] == [silence["id"]]
            and states["EtcdNoLeader"]["state"] == "active"
        )

    assert await eventually(etcd_active_kubelet_silenced)
    events = {e["action"]: e for e in audit_of(world.kubegate.db).events()}
    assert events["alert.silence"]["details"]["approved_by"] == ["U0BOB"]
    assert events["alert.silence"]["details"]["matchers"] == [KUBELET]
    assert {"silence.proposed", "silence.request", "silence.vote", "refusal"} <= set(events)


async def test_a_forged_silence_confirmation_does_nothing(world: World) -> None:
    testbed = world.testbed
    await world.alertmanager.fire(KUBELET, {"summary": "kubelet on worker-3 stopped reporting"})
    alert: Message = await testbed.slack.wait_for(
        lambda: next(
            (m for m in testbed.slack.messages(CHANNEL) if "stopped reporting" in m.shown), None
        ),
        timeout=20,
    )
    await click(testbed, "U0ALICE", alert, "Silence 1h")
    shown = await wait_ephemeral(testbed, "U0ALICE", "check what it matches")
    await testbed.slack.user("U0ALICE").click_action(
        channel=CHANNEL, message_ts=shown.ts, action_id="kubegate.silence.confirm", value="1:forged"
    )
    await wait_ephemeral(testbed, "U0ALICE", "does not belong to a silence request")
    assert await world.alertmanager.silences() == []


@pytest.mark.parametrize(
    "silence_rule",
    [{"verbs": ["silence"], "requesters": ["sre"], "approvals": 0, "longest": "30m"}],
)
async def test_a_rule_without_approvals_creates_on_confirm_and_cuts_to_its_longest(
    world: World,
) -> None:
    testbed = world.testbed
    await world.alertmanager.fire(KUBELET, {"summary": "kubelet on worker-3 stopped reporting"})
    alert: Message = await testbed.slack.wait_for(
        lambda: next(
            (m for m in testbed.slack.messages(CHANNEL) if "stopped reporting" in m.shown), None
        ),
        timeout=20,
    )
    await click(testbed, "U0BOB", alert, "Silence 1h")
    shown = await wait_ephemeral(testbed, "U0BOB", "Silence for 30m: check what it matches")
    assert "needs no approval" in shown.shown and await world.alertmanager.silences() == []
    await click(testbed, "U0BOB", shown, "Create silence")
    await wait_ephemeral(testbed, "U0BOB", "Silenced for 30m")
    await wait_reply(testbed, alert, "🔕 Silenced for 30m")
    [silence] = await eventually(lambda: active_silences(world.alertmanager))
    lasts = datetime.fromisoformat(silence["endsAt"]) - datetime.fromisoformat(silence["startsAt"])
    assert timedelta(minutes=29) < lasts <= timedelta(minutes=30)
