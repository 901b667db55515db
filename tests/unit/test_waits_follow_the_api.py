"""Waits on a node follow the API: the health gate after a kubelet restart passes the moment
the node reports Ready, and a drain's wait ends the moment its last pod is deleted; their
periodic checks are only the fallback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from playbooks import eviction, health
from playbooks.base import ClusterHandle
from playbooks.pods import pod_view
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


async def test_a_drained_pod_is_known_gone_the_moment_the_api_deletes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(eviction, "GONE_CHECK_S", 600.0)  # only the watch can answer in time
    kube = FakeKube(node("worker-3"), pod("web-1", node="worker-3"), pod("web-2", node="worker-3"))
    pods = [pod_view(p) for p in await kube.pods_on("worker-3")]
    waiting = asyncio.create_task(
        eviction.wait_until_gone(kube, "worker-3", pods, deadline=time.monotonic() + 900)
    )
    await asyncio.sleep(0.05)
    kube._delete("Pod", "shop", "web-1")  # the kubelet finished it
    await asyncio.sleep(0.05)
    assert not waiting.done()  # web-2 is still there
    kube._delete("Pod", "shop", "web-2")
    assert await asyncio.wait_for(waiting, 10) == []
