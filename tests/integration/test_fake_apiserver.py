"""The fake kube-apiserver as the real kubectl and the official kubernetes clients see it."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes.aio import client as kube
from kubernetes.aio import config as kube_config
from kubernetes.aio import watch as kube_watch

from testbed.apiserver import FakeApiServer, NodeSpec

KUBECTL = "/usr/bin/kubectl"
DEADLINE_SECONDS = 10.0


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass
class Cluster:
    server: FakeApiServer
    kubeconfig: Path
    home: Path

    async def kubectl(self, *args: str, kubeconfig: Path | None = None) -> Result:
        # Run as a subprocess of this loop so the server, on the same loop, keeps serving.
        process = await asyncio.create_subprocess_exec(
            KUBECTL,
            "--kubeconfig",
            str(kubeconfig or self.kubeconfig),
            "--cache-dir",
            str(self.home / "kube-cache"),
            "--request-timeout",
            "20s",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HOME": str(self.home)},
        )
        stdout, stderr = await process.communicate()
        assert process.returncode is not None
        return Result(process.returncode, stdout.decode(), stderr.decode())

    async def api(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        tls = ssl.create_default_context(cafile=str(self.server.ca_path))
        headers = {"Authorization": f"Bearer {self.server.token}", "Content-Type": content_type}
        data = None if body is None else json.dumps(body)
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, self.server.url + path, data=data, headers=headers, ssl=tls
            ) as response,
        ):
            return response.status, await response.json()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def start_cluster(tmp_path: Path, **options: Any) -> Cluster:
    server = FakeApiServer(workdir=tmp_path / "apiserver", **options)
    await server.start()
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    return Cluster(server, kubeconfig, tmp_path)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    started = await start_cluster(tmp_path)
    yield started
    await started.server.stop()


@pytest.fixture
async def core_api(cluster: Cluster) -> AsyncIterator[Any]:
    configuration = kube.Configuration()
    await kube_config.load_kube_config(
        config_file=str(cluster.kubeconfig), client_configuration=configuration
    )
    async with kube.ApiClient(configuration) as api_client:
        yield kube.CoreV1Api(api_client)


@pytest.mark.parametrize("server_version", ["v1.31.2", "v1.32.4"])
async def test_kubectl_lists_the_four_ready_nodes(tmp_path: Path, server_version: str) -> None:
    cluster = await start_cluster(tmp_path, version=server_version)
    try:
        result = await cluster.kubectl("get", "nodes")
    finally:
        await cluster.server.stop()

    assert result.code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["cp-1", "worker-1", "worker-2", "worker-3"]
    assert all(row[1] == "Ready" for row in rows)
    assert rows[0][2] == "control-plane"
    assert all(row[-1] == server_version for row in rows)


async def test_kubectl_cordon_and_uncordon_a_worker(cluster: Cluster) -> None:
    cordon = await cluster.kubectl("cordon", "worker-2")
    assert cordon.code == 0, cordon.stderr
    assert "node/worker-2 cordoned" in cordon.stdout

    flag = await cluster.kubectl("get", "node", "worker-2", "-o", "jsonpath={.spec.unschedulable}")
    assert flag.stdout == "true"
    listing = await cluster.kubectl("get", "nodes")
    statuses = {line.split()[0]: line.split()[1] for line in listing.stdout.splitlines()[1:]}
    assert statuses["worker-2"] == "Ready,SchedulingDisabled"
    assert statuses["worker-1"] == "Ready"

    uncordon = await cluster.kubectl("uncordon", "worker-2")
    assert uncordon.code == 0, uncordon.stderr
    node = cluster.server.objects.get("v1", "nodes", None, "worker-2")
    assert node is not None
    assert not node["spec"].get("unschedulable")


async def test_kubectl_get_node_as_json_has_kubelet_fields(cluster: Cluster) -> None:
    result = await cluster.kubectl("get", "node", "worker-2", "-o", "json")

    node = json.loads(result.stdout)
    assert node["kind"] == "Node"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.2"
    assert {"type": "InternalIP", "address": "127.0.10.3"} in node["status"]["addresses"]
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"


async def test_kubectl_with_a_wrong_token_is_unauthorized(cluster: Cluster, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-kubeconfig"
    wrong.write_text(cluster.kubeconfig.read_text().replace(cluster.server.token, "not-the-token"))

    result = await cluster.kubectl("get", "nodes", kubeconfig=wrong)

    # kubectl's wording for a 401 during discovery, the same against a real apiserver
    assert result.code != 0
    assert "You must be logged in to the server" in result.stderr


async def test_a_request_without_the_token_gets_an_unauthorized_status(cluster: Cluster) -> None:
    tls = ssl.create_default_context(cafile=str(cluster.server.ca_path))
    async with (
        aiohttp.ClientSession() as session,
        session.get(cluster.server.url + "/api/v1/nodes", ssl=tls) as response,
    ):
        status = await response.json()

    assert response.status == 401
    assert response.content_type == "application/json"
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


async def test_python_client_reads_lists_and_patches_a_node(
    cluster: Cluster, core_api: Any
) -> None:
    node = await core_api.read_node("worker-2")
    assert node.status.node_info.kubelet_version == "v1.31.2"
    names = [item.metadata.name for item in (await core_api.list_node()).items]
    assert names == ["cp-1", "worker-1", "worker-2", "worker-3"]

    patched = await core_api.patch_node("worker-2", {"spec": {"unschedulable": True}})

    assert patched.spec.unschedulable is True
    stored = cluster.server.objects.get("v1", "nodes", None, "worker-2")
    assert stored is not None
    assert stored["spec"]["unschedulable"] is True


async def test_replace_with_a_stale_resource_version_is_a_conflict(
    cluster: Cluster, core_api: Any
) -> None:
    node = await core_api.read_node("worker-1")
    await core_api.patch_node("worker-1", {"metadata": {"labels": {"touched": "yes"}}})

    with pytest.raises(kube.ApiException) as refused:
        await core_api.replace_node("worker-1", node)

    assert refused.value.status == 409
    assert json.loads(str(refused.value.body))["reason"] == "Conflict"


async def test_patch_carrying_a_stale_resource_version_is_a_conflict(cluster: Cluster) -> None:
    patch = {"metadata": {"resourceVersion": "1"}, "spec": {"unschedulable": True}}

    code, status = await cluster.api(
        "PATCH",
        "/api/v1/nodes/worker-3",
        patch,
        content_type="application/strategic-merge-patch+json",
    )

    assert code == 409
    assert (status["kind"], status["status"], status["reason"]) == ("Status", "Failure", "Conflict")
    node = cluster.server.objects.get("v1", "nodes", None, "worker-3")
    assert node is not None
    assert not node["spec"].get("unschedulable")


async def test_heartbeats_bump_resource_version_but_not_spec(tmp_path: Path) -> None:
    cluster = await start_cluster(tmp_path, heartbeat_interval=0.2)
    try:
        first = cluster.server.objects.get("v1", "nodes", None, "worker-1")
        assert first is not None

        async def bumped() -> bool:
            now = cluster.server.objects.get("v1", "nodes", None, "worker-1")
            assert now is not None
            version = int(now["metadata"]["resourceVersion"])
            return version > int(first["metadata"]["resourceVersion"]) + 4

        await eventually(bumped, "several heartbeats on worker-1")
        latest = cluster.server.objects.get("v1", "nodes", None, "worker-1")
        assert latest is not None
        assert latest["spec"] == first["spec"]
        assert latest["metadata"]["generation"] == first["metadata"]["generation"]
    finally:
        await cluster.server.stop()


async def test_a_watch_sees_the_cordon_as_modified(cluster: Cluster, core_api: Any) -> None:
    seen: list[tuple[str, str, Any]] = []

    async def watch_nodes() -> None:
        stream = kube_watch.Watch()
        async for event in stream.stream(core_api.list_node, timeout_seconds=int(DEADLINE_SECONDS)):
            node = event["object"]
            seen.append((event["type"], node.metadata.name, node.spec.unschedulable))
            if seen[-1] == ("MODIFIED", "worker-2", True):
                stream.stop()

    watcher = asyncio.create_task(watch_nodes())

    async def initial_state_seen() -> bool:
        return len(seen) >= 4

    await eventually(initial_state_seen, "the watch to replay the current nodes")
    assert {event[0] for event in seen[:4]} == {"ADDED"}
    cordon = await cluster.kubectl("cordon", "worker-2")
    assert cordon.code == 0, cordon.stderr
    await asyncio.wait_for(watcher, DEADLINE_SECONDS)

    assert seen[-1] == ("MODIFIED", "worker-2", True)


async def test_stats_remember_the_most_nodes_cordoned_at_once(cluster: Cluster) -> None:
    for node in ("worker-1", "worker-2"):
        assert (await cluster.kubectl("cordon", node)).code == 0
    for node in ("worker-1", "worker-2"):
        assert (await cluster.kubectl("uncordon", node)).code == 0
    assert (await cluster.kubectl("cordon", "worker-3")).code == 0

    code, stats = await cluster.api("GET", "/testbed/stats")

    assert code == 200
    assert stats == {
        "pdb_violations": 0,
        "max_unschedulable_nodes": 2,
        "unschedulable_nodes": 1,
        "max_apiservers_down": 0,
        "apiservers_down": 0,
        "registered_untainted": 0,
    }


async def test_extra_nodes_and_fault_switches(tmp_path: Path) -> None:
    extra = NodeSpec("worker-4", "worker", "v1.30.6", "127.0.20.4")
    nodes = [NodeSpec("cp-1", "control-plane"), extra]
    cluster = await start_cluster(tmp_path, nodes=nodes)
    try:
        code, node = await cluster.api("GET", "/api/v1/nodes/worker-4")
        assert code == 200
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.6"

        await cluster.api("POST", "/testbed/faults", {"fail_all_with_500": True})
        code, status = await cluster.api("GET", "/api/v1/nodes")
        assert (code, status["reason"]) == (500, "InternalError")

        await cluster.api("POST", "/testbed/faults", {"fail_all_with_500": False, "hang": True})
        hanging = asyncio.create_task(cluster.api("GET", "/api/v1/nodes"))
        await asyncio.sleep(0.2)  # nothing to poll for: the point is that nothing happens
        assert not hanging.done()
        cluster.server.hang = False
        code, listing = await asyncio.wait_for(hanging, DEADLINE_SECONDS)
        assert code == 200
        assert len(listing["items"]) == 2
    finally:
        await cluster.server.stop()


async def test_a_throttled_apiserver_answers_429_with_retry_after(cluster: Cluster) -> None:
    cluster.server.fail_status = 429
    tls = ssl.create_default_context(cafile=str(cluster.server.ca_path))
    headers = {"Authorization": f"Bearer {cluster.server.token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(cluster.server.url + "/api/v1/nodes", ssl=tls) as response,
    ):
        status = await response.json()

    assert response.status == 429
    assert response.headers["Retry-After"] == "1"
    assert status["reason"] == "TooManyRequests"
    assert status["details"] == {"retryAfterSeconds": 1}
