"""The health gate after a kubelet restart passes the moment the API reports the node Ready:
it follows the Node and its pods, so its periodic check is only the fallback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from playbooks import health
from playbooks.base import ClusterHandle
from tests.fakes.kube import FakeKube, node, pod


def not_ready(obj: dict[str, Any]) -> None:
    obj["status"]["conditions"] = [{"type": "Ready", "status": "False"}]


def ready(obj: dict[str, Any]) -> None:
    obj["status"]["conditions"] = [{"type": "Ready", "status": "True"}]


@pytest.fixture
def no_periodic_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Longer than each test's own wait: only news from the API can wake the gate in time."""
    monkeypatch.setattr(health, "POLL_INTERVAL_S", 600.0)


async def gate(kube: FakeKube, name: str, version: str = "v1.32.0") -> list[str]:
    cluster = ClusterHandle(name="prod", kube=kube)
    return await health.wait_until_healthy(cluster, name, kubelet_version=version, timeout=900)


async def test_the_gate_passes_when_the_restarted_kubelet_reports_ready(
    no_periodic_check: None,
) -> None:
    kube = FakeKube(node("worker-3", ready=False, kubelet="v1.32.0"))
    waiting = asyncio.create_task(gate(kube, "worker-3"))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # NotReady: the gate holds the node
    kube.edit("Node", "worker-3", ready)
    assert await asyncio.wait_for(waiting, 10) == []


async def test_the_gate_waits_for_a_daemonset_pod_and_passes_when_it_is_ready(
    no_periodic_check: None,
) -> None:
    agent = pod("agent-x", node="worker-3", namespace="kube-system", owner=("DaemonSet", "agent"))
    not_ready(agent)
    kube = FakeKube(node("worker-3", kubelet="v1.32.0"), agent)
    waiting = asyncio.create_task(gate(kube, "worker-3"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    kube.edit("Pod", "agent-x", ready, namespace="kube-system")
    assert await asyncio.wait_for(waiting, 10) == []


async def test_a_broken_watch_leaves_the_periodic_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "POLL_INTERVAL_S", 0.05)
    kube = FakeKube(node("worker-3", ready=False, kubelet="v1.32.0"))
    kube.fail("watch_node", 503, times=1000)
    kube.fail("watch_pods", 503, times=1000)
    waiting = asyncio.create_task(gate(kube, "worker-3"))
    await asyncio.sleep(0.05)
    kube.edit("Node", "worker-3", ready)
    assert await asyncio.wait_for(waiting, 10) == []
