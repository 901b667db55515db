"""A single control plane bites as a real one does: its kubelet follows the static-pod manifests
there too, so moving kube-apiserver.yaml out takes the cluster's only API server away
(connection refused) until it is back, moving etcd.yaml out leaves the API server up but
failing whatever needs storage, and the kubelet posts a new mirror pod once the API answers."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from testbed.fleet.shims.staticpods import upgrade_manifest
from testbed.up import Testbed

from .fleet_helpers import openssh
from .test_ha_testbed import (
    MANIFESTS,
    eventually,
    kubectl,
    on_node,
    refuses_connections,
    stats,
    version_at,
)


def mirror_uid(testbed: Testbed, pod: str) -> str | None:
    found = testbed.apiserver.objects.get("v1", "pods", "kube-system", f"{pod}-cp-1")
    return None if found is None else str(found["metadata"]["uid"])


async def status_of(testbed: Testbed, path: str) -> int | None:
    """The HTTP status of GET `path` on the only API server, None when nothing answers."""
    tls = ssl.create_default_context(cafile=str(testbed.apiserver.ca_path))
    headers = {"Authorization": f"Bearer {testbed.apiserver.token}"}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{testbed.apiserver.url}{path}", ssl=tls, headers=headers) as answer,
        ):
            return answer.status
    except aiohttp.ClientConnectionError:
        return None


async def test_the_only_api_server_restarts_at_its_new_manifests_version_and_is_away_meanwhile(
    full_testbed: Testbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = full_testbed.apiserver.url
    # What `kubeadm upgrade apply` writes: a new image tag in the API server's manifest.
    upgrade_manifest(on_node(full_testbed, "cp-1", monkeypatch), "kube-apiserver", "v1.31.3")

    async def away() -> bool:
        return await refuses_connections(url)

    await eventually(away, "the only API server to stop for its restart")

    async def upgraded() -> bool:
        return await version_at(full_testbed, url) == "v1.31.3"

    await eventually(upgraded, "cp-1 to serve v1.31.3 at the same address")
    assert stats(full_testbed)["max_apiservers_down"] == 1


async def test_the_api_server_manifest_out_leaves_no_api_until_it_is_back_with_a_new_mirror_pod(
    full_testbed: Testbed,
) -> None:
    url, before = full_testbed.apiserver.url, mirror_uid(full_testbed, "kube-apiserver")
    out = await openssh(
        full_testbed.fleet, "cp-1", f"sudo -n -- mv {MANIFESTS}/kube-apiserver.yaml /tmp/"
    )
    assert out.code == 0, out.stderr

    async def away() -> bool:
        return await refuses_connections(url)

    await eventually(away, "the only API server to stop")
    assert (await kubectl(full_testbed, "get", "nodes")).code != 0  # nothing else answers
    back = await openssh(
        full_testbed.fleet, "cp-1", f"sudo -n -- mv /tmp/kube-apiserver.yaml {MANIFESTS}/"
    )
    assert back.code == 0, back.stderr  # the kubelet posts the mirror pod once it can

    async def mirrored_again() -> bool:
        uid = mirror_uid(full_testbed, "kube-apiserver")
        return uid is not None and uid != before

    await eventually(mirrored_again, "a new kube-apiserver-cp-1 mirror pod")
    assert (await kubectl(full_testbed, "get", "nodes")).code == 0
    assert stats(full_testbed)["max_apiservers_down"] == 1


async def test_etcd_manifest_out_keeps_the_api_server_up_but_failing_until_etcd_is_back(
    full_testbed: Testbed,
) -> None:
    before = mirror_uid(full_testbed, "etcd")
    out = await openssh(full_testbed.fleet, "cp-1", f"sudo -n -- mv {MANIFESTS}/etcd.yaml /tmp/")
    assert out.code == 0, out.stderr

    async def failing() -> bool:
        return await status_of(full_testbed, "/api/v1/nodes") == 500

    # kube-apiserver stays up without its etcd: reads and writes fail, /readyz says etcd failed.
    await eventually(failing, "the API server to fail requests that need etcd")
    assert await status_of(full_testbed, "/readyz") == 500
    assert await status_of(full_testbed, "/version") == 200
    assert stats(full_testbed)["etcd_quorum_lost"] == 1
    back = await openssh(full_testbed.fleet, "cp-1", f"sudo -n -- mv /tmp/etcd.yaml {MANIFESTS}/")
    assert back.code == 0, back.stderr

    async def answering() -> bool:
        return await status_of(full_testbed, "/api/v1/nodes") == 200

    await eventually(answering, "the API server to answer again once etcd runs")

    async def mirrored_again() -> bool:
        uid = mirror_uid(full_testbed, "etcd")
        return uid is not None and uid != before

    await eventually(mirrored_again, "a new etcd-cp-1 mirror pod")
