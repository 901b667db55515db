"""The fake apiserver's workloads as the official python client sees them: controllers that keep
replicas on schedulable nodes, graceful deletion, PodDisruptionBudgets, eviction and HPAs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio import client as kube
from kubernetes.aio import config as kube_config
from kubernetes.aio import watch as kube_watch

from testbed.apiserver.pods import is_ready
from tests.integration.test_fake_apiserver import Cluster, eventually, start_cluster

DELAYS = {"readiness_delay": 0.2, "termination_delay": 0.2}


def deployment(name: str, replicas: int, *, namespace: str = "shop", pin: str = "") -> Any:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if pin:
        metadata["annotations"] = {"testbed.kubegate.io/initial-nodes": pin}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "shop"}},
                "spec": {"containers": [{"name": name, "image": "nginx:1.27"}]},
            },
        },
    }


def budget(name: str, labels: dict[str, str], **spec: Any) -> Any:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": {"matchLabels": labels}, **spec},
    }


def scenario(*manifests: Any) -> dict[str, Any]:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    return {**DELAYS, "manifests": [namespace, *manifests]}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    started = await start_cluster(tmp_path, **DELAYS)
    yield started
    await started.server.stop()


@pytest.fixture
async def core(cluster: Cluster) -> AsyncIterator[Any]:
    configuration = kube.Configuration()
    await kube_config.load_kube_config(
        config_file=str(cluster.kubeconfig), client_configuration=configuration
    )
    async with kube.ApiClient(configuration) as api_client:
        yield kube.CoreV1Api(api_client)


def pods_of(cluster: Cluster, app: str) -> list[Any]:
    pods = cluster.server.objects.list("v1", "pods", "shop")
    return [pod for pod in pods if pod["metadata"]["labels"].get("app") == app]


def eviction(name: str) -> Any:
    return kube.V1Eviction(metadata=kube.V1ObjectMeta(name=name, namespace="shop"))


async def test_deployment_pods_land_only_on_schedulable_nodes(cluster: Cluster) -> None:
    assert (await cluster.kubectl("cordon", "worker-2")).code == 0
    taint = await cluster.kubectl("taint", "node", "worker-3", "dedicated=db:NoSchedule")
    assert taint.code == 0, taint.stderr

    await cluster.server.load_scenario(scenario(deployment("web", 3)))

    pods = pods_of(cluster, "web")
    assert len(pods) == 3
    assert {pod["spec"]["nodeName"] for pod in pods} == {"worker-1"}
    assert all(is_ready(pod) and pod["status"]["phase"] == "Running" for pod in pods)
    owner = pods[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["controller"]) == ("ReplicaSet", True)
    replicaset = cluster.server.objects.require("apps/v1", "replicasets", "shop", owner["name"])
    assert replicaset["metadata"]["ownerReferences"][0]["kind"] == "Deployment"


async def test_daemonset_pods_sit_on_every_node_even_cordoned_ones(cluster: Cluster) -> None:
    assert (await cluster.kubectl("cordon", "worker-1")).code == 0
    agent = deployment("agent", 1, namespace="kube-system")
    agent["kind"] = "DaemonSet"
    del agent["spec"]["replicas"]
    agent["spec"]["template"]["spec"]["tolerations"] = [{"operator": "Exists"}]

    await cluster.server.load_scenario(scenario(agent))

    pods = cluster.server.objects.list("v1", "pods", "kube-system")
    assert sorted(pod["spec"]["nodeName"] for pod in pods) == [
        "cp-1",
        "worker-1",
        "worker-2",
        "worker-3",
    ]
    assert all(pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet" for pod in pods)


async def test_a_deleted_pod_terminates_then_vanishes_and_is_replaced(
    cluster: Cluster, core: Any
) -> None:
    await cluster.server.load_scenario(scenario(deployment("web", 2, pin="worker-1")))
    cluster.server.termination_delay = 1.0  # long enough to read the pod while Terminating
    victim = pods_of(cluster, "web")[0]["metadata"]

    deleted = await core.delete_namespaced_pod(victim["name"], "shop")

    assert deleted.metadata.deletion_timestamp is not None
    assert deleted.metadata.deletion_grace_period_seconds == 30
    terminating = await core.read_namespaced_pod(victim["name"], "shop")
    assert terminating.metadata.uid == victim["uid"]  # still there, Terminating

    async def gone() -> bool:
        try:
            await core.read_namespaced_pod(victim["name"], "shop")
        except kube.ApiException as error:
            return error.status == 404
        return False

    await eventually(gone, "the pod to disappear after the termination delay")
    names = {pod["metadata"]["name"] for pod in pods_of(cluster, "web")}
    assert len(names) == 2
    assert victim["name"] not in names


async def test_eviction_is_granted_then_refused_when_the_budget_is_spent(
    cluster: Cluster, core: Any
) -> None:
    await cluster.server.load_scenario(
        scenario(
            deployment("web", 3, pin="worker-1"), budget("web", {"app": "web"}, maxUnavailable=1)
        )
    )
    first, second = (pod["metadata"]["name"] for pod in pods_of(cluster, "web")[:2])

    granted = await core.create_namespaced_pod_eviction(first, "shop", eviction(first))
    with pytest.raises(kube.ApiException) as refused:
        await core.create_namespaced_pod_eviction(second, "shop", eviction(second))

    assert granted is not None
    assert refused.value.status == 429
    status = json.loads(refused.value.body)
    assert status["reason"] == "TooManyRequests"
    assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert status["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
        }
    ]
    assert cluster.server.stats()["pdb_violations"] == 0


async def test_concurrent_evictions_cannot_both_spend_the_last_disruption(
    cluster: Cluster, core: Any
) -> None:
    await cluster.server.load_scenario(
        scenario(
            deployment("web", 3, pin="worker-1"), budget("web", {"app": "web"}, maxUnavailable=1)
        )
    )
    names = [pod["metadata"]["name"] for pod in pods_of(cluster, "web")]

    results = await asyncio.gather(
        *(core.create_namespaced_pod_eviction(n, "shop", eviction(n)) for n in names),
        return_exceptions=True,
    )

    refused = [r for r in results if isinstance(r, kube.ApiException)]
    assert len(refused) == 2
    assert {r.status for r in refused} == {429}


async def test_eviction_fails_with_500_when_two_budgets_cover_the_pod(
    cluster: Cluster, core: Any
) -> None:
    await cluster.server.load_scenario(
        scenario(
            deployment("web", 3),
            budget("web", {"app": "web"}, maxUnavailable=1),
            budget("shop-wide", {"tier": "shop"}, minAvailable=1),
        )
    )
    name = pods_of(cluster, "web")[0]["metadata"]["name"]

    with pytest.raises(kube.ApiException) as failed:
        await core.create_namespaced_pod_eviction(name, "shop", eviction(name))

    assert failed.value.status == 500
    assert "more than one PodDisruptionBudget" in json.loads(failed.value.body)["message"]


async def test_evicting_a_missing_pod_is_not_found(cluster: Cluster, core: Any) -> None:
    await cluster.server.load_scenario(scenario())

    with pytest.raises(kube.ApiException) as missing:
        await core.create_namespaced_pod_eviction("ghost", "shop", eviction("ghost"))

    assert missing.value.status == 404


async def test_a_finished_pod_is_evictable_whatever_its_budget(cluster: Cluster, core: Any) -> None:
    await cluster.server.load_scenario(
        scenario(deployment("job", 1), budget("job", {"app": "job"}, minAvailable=1))
    )
    name = pods_of(cluster, "job")[0]["metadata"]["name"]
    await core.patch_namespaced_pod_status(name, "shop", {"status": {"phase": "Succeeded"}})

    await core.create_namespaced_pod_eviction(name, "shop", eviction(name))

    assert name not in {pod["metadata"]["name"] for pod in pods_of(cluster, "job")}


async def test_a_delete_that_breaks_a_budget_is_counted(cluster: Cluster, core: Any) -> None:
    await cluster.server.load_scenario(
        scenario(deployment("db", 1), budget("db", {"app": "db"}, minAvailable=1))
    )
    name = pods_of(cluster, "db")[0]["metadata"]["name"]

    await core.delete_namespaced_pod(name, "shop")

    code, stats = await cluster.api("GET", "/testbed/stats")
    assert code == 200
    assert stats["pdb_violations"] == 1


async def test_budget_status_and_watch_follow_an_eviction_and_its_replacement(
    cluster: Cluster, core: Any
) -> None:
    await cluster.server.load_scenario(
        scenario(deployment("web", 3), budget("web", {"app": "web"}, maxUnavailable=1))
    )
    policy = kube.PolicyV1Api(core.api_client)
    pdb = await policy.read_namespaced_pod_disruption_budget("web", "shop")
    assert (pdb.status.expected_pods, pdb.status.desired_healthy) == (3, 2)
    assert (pdb.status.current_healthy, pdb.status.disruptions_allowed) == (3, 1)
    allowed: list[int] = []

    async def watch_budget() -> None:
        stream = kube_watch.Watch()
        async for event in stream.stream(
            policy.list_namespaced_pod_disruption_budget,
            "shop",
            resource_version=pdb.metadata.resource_version,
            timeout_seconds=10,
        ):
            allowed.append(event["object"].status.disruptions_allowed)
            if allowed[-1] == 1:
                stream.stop()

    watcher = asyncio.create_task(watch_budget())
    name = pods_of(cluster, "web")[0]["metadata"]["name"]
    await core.create_namespaced_pod_eviction(name, "shop", eviction(name))
    await asyncio.wait_for(watcher, 10)

    assert allowed[0] == 0
    assert allowed[-1] == 1  # the replacement turned Ready


async def test_a_pod_watch_with_a_node_field_selector_sees_the_eviction_end_in_deleted(
    cluster: Cluster, core: Any
) -> None:
    await cluster.server.load_scenario(scenario(deployment("web", 1, pin="worker-2")))
    name = pods_of(cluster, "web")[0]["metadata"]["name"]
    seen: list[tuple[str, str]] = []
    listed = asyncio.Event()

    async def watch_node() -> None:
        stream = kube_watch.Watch()
        async for event in stream.stream(
            core.list_pod_for_all_namespaces,
            field_selector="spec.nodeName=worker-2",
            timeout_seconds=10,
        ):
            seen.append((event["type"], event["object"].metadata.name))
            listed.set()
            if seen[-1] == ("DELETED", name):
                stream.stop()

    watcher = asyncio.create_task(watch_node())
    await asyncio.wait_for(listed.wait(), 10)  # the watch is live before the eviction
    await core.create_namespaced_pod_eviction(name, "shop", eviction(name))
    await asyncio.wait_for(watcher, 10)

    assert ("ADDED", name) in seen
    assert ("MODIFIED", name) in seen  # deletionTimestamp set: Terminating


@pytest.mark.parametrize(
    ("low", "high", "field", "detail"),
    [
        (
            5,
            3,
            "spec.maxReplicas",
            "Invalid value: 3: must be greater than or equal to `minReplicas`",
        ),
        (0, 3, "spec.minReplicas", "Invalid value: 0: must be greater than or equal to 1"),
    ],
)
async def test_an_hpa_with_bad_bounds_is_invalid(
    cluster: Cluster, core: Any, low: int, high: int, field: str, detail: str
) -> None:
    await cluster.server.load_scenario(scenario(deployment("web", 3)))
    autoscaling = kube.AutoscalingV2Api(core.api_client)
    body = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": low,
            "maxReplicas": high,
        },
    }

    with pytest.raises(kube.ApiException) as invalid:
        await autoscaling.create_namespaced_horizontal_pod_autoscaler("shop", body)

    status = json.loads(invalid.value.body)
    assert (invalid.value.status, status["reason"]) == (422, "Invalid")
    assert (
        status["message"]
        == f'HorizontalPodAutoscaler.autoscaling "web" is invalid: {field}: {detail}'
    )
    assert status["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": detail, "field": field}
    ]


async def test_an_hpa_patch_of_both_bounds_scales_its_deployment(
    cluster: Cluster, core: Any
) -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 4,
        },
    }
    await cluster.server.load_scenario(scenario(deployment("web", 2), hpa))
    autoscaling = kube.AutoscalingV2Api(core.api_client)

    await autoscaling.patch_namespaced_horizontal_pod_autoscaler(
        "web", "shop", {"spec": {"minReplicas": 3, "maxReplicas": 10}}
    )

    async def three_ready() -> bool:
        return sum(1 for pod in pods_of(cluster, "web") if is_ready(pod)) == 3

    await eventually(three_ready, "the HPA's new minimum to scale the deployment")
    status = (await autoscaling.read_namespaced_horizontal_pod_autoscaler("web", "shop")).status
    assert (status.current_replicas, status.desired_replicas) == (3, 3)


async def test_the_bench_scenario_puts_sixty_pods_on_worker_1(cluster: Cluster) -> None:
    await cluster.server.load_scenario("drain-bench")

    pods = cluster.server.objects.list("v1", "pods")
    on_node = [pod for pod in pods if pod["spec"].get("nodeName") == "worker-1"]
    assert len(on_node) >= 60
    budgets = cluster.server.objects.list("policy/v1", "poddisruptionbudgets")
    assert budgets
    assert all(pdb["spec"].get("maxUnavailable") == 1 for pdb in budgets)
    assert cluster.server.readiness_delay == pytest.approx(1.0)
