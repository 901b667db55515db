"""`registered_untainted` in GET /testbed/stats: a node created without a taint that `kubectl
taint` adds later is counted (a pod could have landed in between); one that registered with
its taint, or only gains the node lifecycle controller's own taints, is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_fake_apiserver import Cluster, start_cluster


def new_node(name: str, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"taints": taints} if taints else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    started = await start_cluster(tmp_path)
    yield started
    await started.server.stop()


async def registered_untainted(cluster: Cluster) -> int:
    status, stats = await cluster.api("GET", "/testbed/stats")
    assert status == 200
    return int(stats["registered_untainted"])


async def test_a_taint_added_after_registration_is_counted_one_given_at_registration_is_not(
    cluster: Cluster,
) -> None:
    batch = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
    status, _ = await cluster.api("POST", "/api/v1/nodes", new_node("worker-8", [batch]))
    assert status == 201
    status, _ = await cluster.api("POST", "/api/v1/nodes", new_node("worker-9"))
    assert status == 201
    assert await registered_untainted(cluster) == 0

    managed = await cluster.kubectl("taint", "node", "worker-9", "node.kubernetes.io/x:NoSchedule")
    assert managed.code == 0, managed.stderr
    assert await registered_untainted(cluster) == 0

    late = await cluster.kubectl("taint", "node", "worker-9", "dedicated=batch:NoSchedule")
    assert late.code == 0, late.stderr
    again = await cluster.kubectl("taint", "node", "worker-8", "gpu=yes:NoSchedule")
    assert again.code == 0, again.stderr
    assert await registered_untainted(cluster) == 2
