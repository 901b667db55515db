"""kubegate's own watches, read straight off the API server's stream: a node's changes and the
pods leaving it arrive as the API's objects, and a watch the server refuses fails in words."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from playbooks.kube import KubeApi, KubeError
from testbed.apiserver import FakeApiServer

DEADLINE_S = 20.0


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[KubeApi]:
    server = FakeApiServer(workdir=tmp_path / "apiserver")
    await server.start()
    await server.load_scenario("drain")
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    client = await KubeApi.connect(kubeconfig=kubeconfig, context=None)
    yield client
    await client.close()
    await server.stop()


async def test_a_node_watch_sees_the_node_then_its_cordon(api: KubeApi) -> None:
    seen: list[tuple[str, bool]] = []

    async def follow() -> None:
        async for kind, node in api.watch_node("worker-1", timeout_seconds=15):
            seen.append((kind, bool(node["spec"].get("unschedulable"))))
            if kind == "ADDED":
                await api.set_unschedulable("worker-1", True)
            elif node["spec"].get("unschedulable"):
                return

    async with asyncio.timeout(DEADLINE_S):
        await follow()
    assert seen[0] == ("ADDED", False)
    assert seen[-1] == ("MODIFIED", True)


async def test_a_pod_watch_carries_the_pods_on_that_node_and_only_those(api: KubeApi) -> None:
    on_worker_1 = {pod["metadata"]["name"] for pod in await api.pods_on("worker-1")}
    seen: dict[str, str] = {}
    async with asyncio.timeout(DEADLINE_S):
        async for kind, pod in api.watch_pods_on("worker-1", timeout_seconds=1):
            assert kind == "ADDED"
            seen[pod["metadata"]["name"]] = pod["spec"]["nodeName"]
    assert set(seen) == on_worker_1
    assert set(seen.values()) == {"worker-1"}


async def test_a_watch_the_api_refuses_fails_in_words(api: KubeApi) -> None:
    with pytest.raises(KubeError, match="answered 400 to a watch") as refused:
        async with asyncio.timeout(DEADLINE_S):
            async for _event in api._watch(
                api.core.list_node_without_preload_content,
                5,
                field_selector="metadata.name",  # no operator: not a selector
            ):
                pass
    assert refused.value.status == 400
