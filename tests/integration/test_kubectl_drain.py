"""The real kubectl against the fake apiserver's workloads: listing, creating every kind,
tainting, and a drain that has to wait for PodDisruptionBudgets as on a real cluster."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.apiserver import WatchEvent
from testbed.apiserver.pods import is_ready, is_terminating
from testbed.apiserver.scenarios import SCENARIOS
from tests.integration.test_fake_apiserver import Cluster, eventually, start_cluster

READINESS = 1.0


def drain_scenario(**knobs: float) -> dict[str, Any]:
    document = yaml.safe_load((SCENARIOS / "drain.yaml").read_text())
    return {**document, **knobs}


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = await start_cluster(tmp_path)
    await cluster.server.load_scenario(drain_scenario())
    yield cluster
    await cluster.server.stop()


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()[1:]]


def pods_on(cluster: Cluster, node: str) -> list[dict[str, Any]]:
    pods = cluster.server.objects.list("v1", "pods")
    return [pod for pod in pods if pod["spec"].get("nodeName") == node]


async def test_kubectl_lists_pods_wide_budgets_and_autoscalers(shop: Cluster) -> None:
    pods = await shop.kubectl("get", "pods", "-A", "-o", "wide")
    budgets = await shop.kubectl("get", "pdb", "-n", "shop")
    autoscalers = await shop.kubectl("get", "hpa", "-n", "shop")

    assert pods.code == 0, pods.stderr
    header = pods.stdout.splitlines()[0].split()
    assert header[:7] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"]
    on_worker_1 = {row[1].rsplit("-", 2)[0] for row in rows(pods.stdout) if row[7] == "worker-1"}
    assert {"web", "api", "cache", "haproxy"} <= on_worker_1
    assert all(row[3] == "Running" for row in rows(pods.stdout))
    assert budgets.code == 0, budgets.stderr
    assert rows(budgets.stdout) == [
        ["api", "1", "N/A", "1", rows(budgets.stdout)[0][-1]],
        ["web", "N/A", "1", "1", rows(budgets.stdout)[1][-1]],
    ]
    assert autoscalers.code == 0, autoscalers.stderr
    assert rows(autoscalers.stdout)[0][:7] == [
        "web",
        "Deployment/web",
        "cpu:",
        "<unknown>/80%",
        "3",
        "6",
        "3",
    ]


MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: blog}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: front, namespace: blog}
spec:
  replicas: 2
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec: {containers: [{name: front, image: "nginx:1.27"}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs, namespace: blog}
spec:
  selector: {matchLabels: {app: logs}}
  template:
    metadata: {labels: {app: logs}}
    spec: {containers: [{name: logs, image: "fluent/fluent-bit:3.1"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: lone, namespace: blog}
spec: {containers: [{name: lone, image: "busybox:1.36"}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: front, namespace: blog}
spec:
  minAvailable: 50%
  selector: {matchLabels: {app: front}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: front, namespace: blog}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: front}
  minReplicas: 2
  maxReplicas: 5
"""


@pytest.mark.parametrize("server_version", ["v1.31.2", "v1.32.4"])
async def test_kubectl_creates_every_kind_with_validation_on(
    tmp_path: Path, server_version: str
) -> None:
    cluster = await start_cluster(tmp_path, version=server_version, readiness_delay=0.2)
    try:
        manifest = tmp_path / "blog.yaml"
        manifest.write_text(MANIFEST)

        created = await cluster.kubectl("create", "-f", str(manifest))

        assert created.code == 0, created.stderr
        assert "horizontalpodautoscaler.autoscaling/front created" in created.stdout

        async def all_running() -> bool:
            listing = await cluster.kubectl("get", "pods", "-n", "blog", "--no-headers")
            found = rows("\n" + listing.stdout)
            return len(found) == 6 and all(row[2] == "Running" for row in found)

        # 2 Deployment pods, 3 DaemonSet pods (the control plane's taint keeps it off cp-1), 1 bare
        await eventually(all_running, "the created workloads to run")
        budget = await cluster.kubectl("get", "pdb", "front", "-n", "blog", "-o", "json")
        assert json.loads(budget.stdout)["status"]["disruptionsAllowed"] == 1
    finally:
        await cluster.server.stop()


async def test_kubectl_taint_keeps_new_pods_off_the_node(shop: Cluster) -> None:
    for node in ("worker-2", "worker-3"):
        tainted = await shop.kubectl("taint", "node", node, "dedicated=db:NoSchedule")
        assert tainted.code == 0, tainted.stderr
    assert (await shop.kubectl("cordon", "cp-1")).code == 0

    scaled = await shop.kubectl("scale", "deployment", "worker", "-n", "shop", "--replicas=4")

    assert scaled.code == 0, scaled.stderr

    async def scheduled() -> bool:
        pods = shop.server.objects.list("v1", "pods", "shop")
        workers = [p for p in pods if p["metadata"]["labels"].get("app") == "worker"]
        return len(workers) == 4 and all(p["spec"].get("nodeName") for p in workers)

    await eventually(scheduled, "the new worker pods to be scheduled")
    pods = shop.server.objects.list("v1", "pods", "shop")
    newest = sorted(
        (p for p in pods if p["metadata"]["labels"].get("app") == "worker"),
        key=lambda p: int(p["metadata"]["resourceVersion"]),
    )
    assert {p["spec"]["nodeName"] for p in newest[-2:]} == {"worker-1"}
    untainted = await shop.kubectl("taint", "node", "worker-2", "dedicated-")
    assert untainted.code == 0, untainted.stderr
    node = shop.server.objects.require("v1", "nodes", None, "worker-2")
    assert not node["spec"].get("taints")


async def test_kubectl_drain_refuses_emptydir_pods_without_the_flag(shop: Cluster) -> None:
    before = {p["metadata"]["uid"] for p in shop.server.objects.list("v1", "pods")}

    refused = await shop.kubectl("drain", "worker-1", "--ignore-daemonsets", "--timeout=30s")

    assert refused.code != 0
    assert "cannot delete Pods with local storage" in refused.stderr
    assert "shop/cache-" in refused.stderr
    after = shop.server.objects.list("v1", "pods")
    assert {p["metadata"]["uid"] for p in after} == before
    assert not any(is_terminating(p) for p in after)


@dataclass
class Timeline:
    """When each web pod began terminating, and when each web pod turned Ready."""

    evicted: dict[str, float]
    ready: dict[str, float]

    def record(self, event: WatchEvent) -> None:
        pod, now = event.object, asyncio.get_running_loop().time()
        if event.resource != "pods" or pod["metadata"].get("labels", {}).get("app") != "web":
            return
        name = pod["metadata"]["name"]
        if is_terminating(pod):
            self.evicted.setdefault(name, now)
        elif is_ready(pod):
            self.ready.setdefault(name, now)


async def test_kubectl_drain_waits_for_replacements_and_breaks_no_budget(tmp_path: Path) -> None:
    cluster = await start_cluster(tmp_path)
    try:
        await cluster.server.load_scenario(
            drain_scenario(readiness_delay=READINESS, termination_delay=0.5)
        )
        staying = {p["metadata"]["name"] for p in pods_on(cluster, "worker-1")}
        staying = {n for n in staying if n.startswith(("node-agent-", "haproxy-"))}
        timeline = Timeline({}, {})
        cluster.server.objects.on_write(timeline.record)
        loop = asyncio.get_running_loop()
        started = loop.time()

        drained = await cluster.kubectl(
            "drain", "worker-1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s"
        )

        elapsed = loop.time() - started
        assert drained.code == 0, drained.stderr
        assert "node/worker-1 drained" in drained.stdout
        assert {p["metadata"]["name"] for p in pods_on(cluster, "worker-1")} == staying
        # Three web pods behind maxUnavailable: 1: each eviction after the first had to wait
        # for a replacement to turn Ready.
        evictions = sorted(timeline.evicted.values())
        replacements = [t for name, t in timeline.ready.items() if name not in timeline.evicted]
        assert len(evictions) == 3
        for waited, moment in enumerate(evictions[1:], start=1):
            assert sum(1 for t in replacements if t <= moment) >= waited
        assert elapsed >= 2 * READINESS - 0.2
        assert cluster.server.stats()["pdb_violations"] == 0
        assert cluster.server.objects.require("v1", "nodes", None, "worker-1")["spec"][
            "unschedulable"
        ]

        async def all_replaced() -> bool:
            deployments = cluster.server.objects.list("apps/v1", "deployments", "shop")
            return all(
                d.get("status", {}).get("readyReplicas") == d["spec"]["replicas"]
                for d in deployments
            )

        await eventually(all_replaced, "every evicted pod to be replaced and Ready")
        moved = [p for p in cluster.server.objects.list("v1", "pods", "shop") if is_ready(p)]
        assert all(p["spec"]["nodeName"] != "worker-1" for p in moved)
    finally:
        await cluster.server.stop()


async def test_kubectl_shows_events_as_plain_objects(shop: Cluster) -> None:
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "shop"},
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "shop"},
        "reason": "ScalingReplicaSet",
        "message": "Scaled up replica set web-1 to 3",
        "type": "Normal",
    }
    code, _created = await shop.api("POST", "/api/v1/namespaces/shop/events", event)
    assert code == 201

    listed = await shop.kubectl("get", "events", "-n", "shop")

    assert listed.code == 0, listed.stderr
    assert rows(listed.stdout)[0][1:4] == ["Normal", "ScalingReplicaSet", "deployment/web"]
