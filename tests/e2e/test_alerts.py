"""Alerts: Alertmanager's v4 webhook in, one message per group updated on resolve, node buttons
that start the normal request flow."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import (
    CHANNEL,
    audit_of,
    click,
    root_messages,
    wait_text,
)


def webhook(
    status: str, *, node: str = "worker-2", group: str = '{}:{alertname="NodeDiskPressure"}'
) -> dict[str, Any]:
    labels = {"alertname": "NodeDiskPressure", "node": node, "severity": "warning"}
    return {
        "version": "4",
        "groupKey": group,
        "status": status,
        "receiver": "kubegate",
        "groupLabels": {"alertname": "NodeDiskPressure"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": f"{node}: disk 93% full"},
                "startsAt": "2026-11-24T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": "c0ffee",
            }
        ],
    }


async def send(kubegate: Served, body: dict[str, Any], token: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{kubegate.port}/alerts/alertmanager",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        return response.status


def alert_messages(testbed: Testbed) -> list[Any]:
    return [m for m in testbed.slack.messages(CHANNEL) if "NodeDiskPressure" in m.shown]


async def test_an_alert_group_is_posted_once_with_node_buttons_and_updated_when_resolved(
    testbed: Testbed, kubegate: Served
) -> None:
    assert await send(kubegate, webhook("firing"), "wrong-token") == 401
    assert await send(kubegate, webhook("firing"), testbed.alerts_token) == 200
    firing = await testbed.slack.wait_for(lambda: next(iter(alert_messages(testbed)), None))
    assert (
        "🔥 FIRING: NodeDiskPressure · worker-2" in firing.shown and "disk 93% full" in firing.shown
    )
    assert (
        "[Cordon worker-2]" in firing.shown
        and "[Drain worker-2]" in firing.shown
        and "[Silence 1h]" in firing.shown
    )

    assert (
        await send(kubegate, webhook("firing"), testbed.alerts_token) == 200
    )  # repeat: no new post
    assert await send(kubegate, webhook("resolved"), testbed.alerts_token) == 200
    resolved = await wait_text(testbed, firing.ts, "✅ RESOLVED")
    assert "[Cordon" not in resolved.shown and len(alert_messages(testbed)) == 1
    assert [
        e["details"]["status"] for e in audit_of(kubegate.db).events(action="alert.received")
    ] == ["firing", "firing", "resolved"]


async def test_a_cordon_click_on_an_alert_starts_a_request_that_still_needs_approval(
    testbed: Testbed, kubegate: Served
) -> None:
    assert await send(kubegate, webhook("firing"), testbed.alerts_token) == 200
    firing = await testbed.slack.wait_for(lambda: next(iter(alert_messages(testbed)), None))
    await click(testbed, "U0ALICE", firing, "Cordon worker-2")
    root = await testbed.slack.wait_for(lambda: next(iter(root_messages(testbed)), None))
    assert "Cordon worker-2" in root.shown and "requested by <@U0ALICE>" in root.shown
    assert "Needs 1 more approval" in root.shown


async def test_an_alert_about_an_unknown_node_gets_no_buttons_and_bad_payloads_are_refused(
    testbed: Testbed, kubegate: Served
) -> None:
    assert (
        await send(kubegate, webhook("firing", node="ghost-7", group="g2"), testbed.alerts_token)
        == 200
    )
    message = await testbed.slack.wait_for(lambda: next(iter(alert_messages(testbed)), None))
    assert "ghost-7" not in message.shown.split("\n")[0] and "[Cordon" not in message.shown
    assert await send(kubegate, {"version": "3", "alerts": []}, testbed.alerts_token) == 400


async def test_the_real_alertmanager_posts_to_kubegate_and_silence_1h_needs_a_policy_rule(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    assert testbed.world is not None
    alertmanager = testbed.world.alertmanager
    labels = {"alertname": "KubeletDown", "node": "worker-3", "severity": "critical"}
    await alertmanager.fire(labels, {"summary": "kubelet on worker-3 stopped reporting"})
    firing = await testbed.slack.wait_for(
        lambda: next(
            (m for m in testbed.slack.messages(CHANNEL) if "KubeletDown" in m.shown), None
        ),
        timeout=20,
    )
    assert "🔥 FIRING: KubeletDown · worker-3" in firing.shown and "[Silence 1h]" in firing.shown
    await alertmanager.resolve(labels)
    await wait_text(testbed, firing.ts, "✅ RESOLVED", timeout=20)

    await alertmanager.fire(labels, {"summary": "kubelet on worker-3 stopped reporting again"})
    again = await wait_text(testbed, firing.ts, "🔥 FIRING", timeout=20)  # the same message, again
    # The testbed's policy has no `silence` rule: like any change, nobody may (the whole flow,
    # under a rule, is tests/e2e/test_silence.py).
    await click(testbed, "U0BOB", again, "Silence 1h")
    await testbed.slack.wait_for(
        lambda: next(
            (
                m
                for m in testbed.slack.ephemerals(CHANNEL, "U0BOB")
                if "No policy rule allows `silence`" in m.shown
            ),
            None,
        )
    )
    assert await alertmanager.silences() == []
    assert len([m for m in testbed.slack.messages(CHANNEL) if "KubeletDown" in m.shown]) == 1


def set_ready(testbed: Testbed, node: str, ready: bool) -> None:
    def change(obj: dict[str, Any]) -> dict[str, Any]:
        for condition in obj["status"]["conditions"]:
            if condition["type"] == "Ready":
                condition["status"] = "True" if ready else "False"
        return obj

    testbed.apiserver.objects.update("v1", "nodes", None, node, change)


@pytest.mark.parametrize(
    "config_changes", [{"alerts": {"node_not_ready_after": 1, "node_check_every": 0.2}}]
)
async def test_kubegate_alerts_on_a_node_notready_too_long_and_resolves_it_when_ready(
    testbed: Testbed, kubegate: Served
) -> None:
    set_ready(testbed, "worker-3", False)
    alert = await testbed.slack.wait_for(
        lambda: next(
            (m for m in testbed.slack.messages(CHANNEL) if "NodeNotReady" in m.shown), None
        ),
        timeout=10,
    )
    assert (
        "🔥 FIRING: NodeNotReady · worker-3" in alert.shown and "[Cordon worker-3]" in alert.shown
    )
    assert "[Silence 1h]" not in alert.shown  # Alertmanager cannot silence kubegate's own alert
    set_ready(testbed, "worker-3", True)
    await wait_text(testbed, alert.ts, "✅ RESOLVED", timeout=10)
    assert len([m for m in testbed.slack.messages(CHANNEL) if "NodeNotReady" in m.shown]) == 1
