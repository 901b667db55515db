"""What `upgrade cluster` decides from a snapshot: who goes, in which order, and what refuses it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from commands import UpgradeClusterCommand
from playbooks.base import PlanError
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.pods import DrainSelection
from playbooks.upgrade_cluster_plan import ClusterUpgradeSnapshot, decide_cluster_upgrade
from playbooks.upgrade_plan import NO_PODS
from tests.unit.cluster_snapshots import CLUSTER, INVENTORY, drain_of, node, pod


def seen(
    nodes: list[NodeView] | None = None,
    *,
    api_server: str = "v1.31.2",
    drains: dict[str, DrainSelection] | None = None,
    inventory: Inventory = INVENTORY,
) -> ClusterUpgradeSnapshot:
    nodes = CLUSTER if nodes is None else nodes
    pods = {n.name: (drains or {}).get(n.name, NO_PODS) for n in nodes}
    return ClusterUpgradeSnapshot(
        "prod", inventory, Path("/backups"), {"cp-1": api_server}, nodes, pods
    )


def to(version: str, max_unavailable: int = 1) -> UpgradeClusterCommand:
    return UpgradeClusterCommand(to_version=version, max_unavailable=max_unavailable)


def refusal(command: UpgradeClusterCommand, snapshot: ClusterUpgradeSnapshot) -> str:
    with pytest.raises(PlanError) as refused:
        decide_cluster_upgrade(command, snapshot)
    return refused.value.message


def test_an_etcd_snapshot_comes_first_then_control_planes_then_workers() -> None:
    plan = decide_cluster_upgrade(to("v1.32.0", 2), seen())
    assert [step.name for step in plan.steps] == [
        "snapshot",
        "verify",
        "copy-off-host",
        "upgrade-control-planes",
        "upgrade-workers",
    ]
    assert plan.facts["control_planes"] == ["cp-1"]
    assert plan.facts["workers"] == ["worker-1", "worker-2", "worker-3"]
    assert "at most 2 unschedulable at once" in plan.steps[4].title
    assert plan.locks == ["*"] and plan.risk == "high"


def test_control_planes_go_in_the_inventory_order() -> None:
    nodes = [node("cp-2", control_plane=True), *CLUSTER, node("cp-3", control_plane=True)]
    inventory = Inventory(control_planes=["cp-3", "cp-1", "cp-2"])
    plan = decide_cluster_upgrade(to("v1.31.3"), seen(nodes, inventory=inventory))
    assert plan.facts["control_planes"] == ["cp-3", "cp-1", "cp-2"]


def test_nodes_already_at_the_target_are_left_out_of_the_rollout() -> None:
    nodes = [dataclasses.replace(n, kubelet_version="v1.31.3") for n in CLUSTER[:2]] + CLUSTER[2:]
    plan = decide_cluster_upgrade(to("v1.31.3"), seen(nodes, api_server="v1.31.2"))
    # cp-1's kubelet is there, but the API server is not: the first control plane goes again.
    assert plan.facts["control_planes"] == ["cp-1"]
    assert plan.facts["workers"] == ["worker-2", "worker-3"]


def test_a_cluster_wholly_at_the_target_is_nothing_to_do() -> None:
    plan = decide_cluster_upgrade(to("v1.31.2"), seen())
    assert plan.nothing_to_do == "Every node of prod already runs v1.31.2; nothing to do."


def test_skipping_a_minor_is_refused_before_anything_changes() -> None:
    said = refusal(to("v1.33.0"), seen())
    assert said.startswith("Refusing to upgrade cluster prod to v1.33.0; nothing was changed.")
    assert "one minor at a time" in said


def test_a_cluster_without_a_known_control_plane_is_refused_with_the_inventory_hint() -> None:
    said = refusal(to("v1.31.3"), seen([node("worker-1")]))
    assert "No control-plane node found in cluster prod" in said and "control_planes" in said


def test_pods_a_drain_would_lose_on_any_node_refuse_the_whole_upgrade() -> None:
    drains = {"worker-2": drain_of(pod("scratch-1", empty_dir=True))}
    said = refusal(to("v1.31.3"), seen(drains=drains))
    assert "worker-2:" in said and "shop/scratch-1" in said and "--delete-emptydir-data" in said


def test_nodes_cordoned_by_others_leave_no_room_under_max_unavailable() -> None:
    nodes = [dataclasses.replace(n, unschedulable=n.name == "cp-1") for n in CLUSTER]
    said = refusal(to("v1.31.3"), seen(nodes))
    assert "1 node(s) are already cordoned (cp-1)" in said
    assert "--max-unavailable 1 leaves no room" in said


def test_a_cordoned_worker_that_is_itself_behind_does_not_count_against_the_room() -> None:
    nodes = [dataclasses.replace(n, unschedulable=n.name == "worker-1") for n in CLUSTER]
    plan = decide_cluster_upgrade(to("v1.31.3"), seen(nodes))
    assert plan.facts["cordoned"] == ["worker-1"]


def test_no_ready_control_plane_for_the_etcd_snapshot_refuses_the_upgrade() -> None:
    nodes = [dataclasses.replace(n, ready=n.name != "cp-1") for n in CLUSTER]
    said = refusal(to("v1.31.3"), seen(nodes))
    assert "No Ready control-plane node in cluster prod to take an etcd snapshot on" in said
