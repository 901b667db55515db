"""The API servers' versions are read at each control plane's own endpoint, never from whichever
one a load balancer picked: mid-upgrade they differ, and the skew rules are about the oldest."""

from __future__ import annotations

import dataclasses

import pytest

from commands import UpgradeNodeCommand
from playbooks import PlanError
from playbooks.inventory import Inventory, NodeAccess
from playbooks.upgrade_api_servers import read_api_servers
from playbooks.upgrade_plan import plan_node_upgrade
from tests.fakes import FakeKube, cluster_of, node


def ha_cluster() -> FakeKube:
    kube = FakeKube(
        *(node(f"cp-{i}", roles=("control-plane",), internal_ip=f"10.0.0.{i}") for i in (1, 2, 3)),
        node("worker-3", internal_ip="10.0.0.13"),
        version="v1.32.0",  # what the load balancer happened to reach
    )
    kube.api_servers = {
        "https://10.0.0.1:6443": "v1.32.0",
        "https://10.0.0.2:6443": "v1.31.2",
        "https://cp-3.example:6443": "v1.32.0",
    }
    return kube


INVENTORY = Inventory(nodes={"cp-3": NodeAccess(api_server="https://cp-3.example:6443/")})


async def test_each_control_planes_api_server_is_asked_at_its_own_endpoint() -> None:
    kube = ha_cluster()
    cluster = dataclasses.replace(cluster_of(kube), inventory=INVENTORY)
    versions = await read_api_servers(cluster, await kube.list_nodes())
    assert versions == {"cp-1": "v1.32.0", "cp-2": "v1.31.2", "cp-3": "v1.32.0"}
    assert ("server_version", "") not in kube.calls


async def test_a_worker_is_held_to_the_oldest_api_server_not_the_one_the_balancer_picked() -> None:
    kube = ha_cluster()
    cluster = dataclasses.replace(cluster_of(kube), inventory=INVENTORY)
    command = UpgradeNodeCommand(node="worker-3", to_version="v1.32.0")
    with pytest.raises(PlanError) as refused:
        await plan_node_upgrade(command, cluster)
    assert "cp-2's is at v1.31.2" in refused.value.message


async def test_one_control_plane_is_asked_through_the_clusters_own_address() -> None:
    kube = FakeKube(node("cp-1", roles=("control-plane",), internal_ip="10.0.0.1"))
    versions = await read_api_servers(cluster_of(kube), await kube.list_nodes())
    assert versions == {"cp-1": "v1.31.2"}
