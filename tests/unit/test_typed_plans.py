"""Every plan of the SSH playbooks survives the store (JSON and back, same digest) and its steps
are built by name from their typed parameters, as the engine builds them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from commands import (
    ProvisionNodeCommand,
    RotateCertsCommand,
    UpgradeClusterCommand,
    UpgradeNodeCommand,
)
from playbooks.base import build_step
from playbooks.etcd_backup import BackupSnapshot, decide_backup
from playbooks.health import HealthGate
from playbooks.host_prep import SwapOff
from playbooks.inventory import Inventory
from playbooks.join import JoinCluster
from playbooks.packages import UpgradeKubeadm
from playbooks.plan import Plan
from playbooks.provision_plan import ProvisionSnapshot, decide_provision
from playbooks.provision_steps import NodeReady
from playbooks.rotate_certs import RotationSnapshot, decide_rotation
from playbooks.upgrade_cluster import UpgradeWorkers
from playbooks.upgrade_cluster_plan import ClusterUpgradeSnapshot, decide_cluster_upgrade
from playbooks.upgrade_plan import NO_PODS, NodeUpgradeSnapshot, decide_node_upgrade
from playbooks.upgrade_steps import CordonForUpgrade, KubeadmUpgrade
from tests.unit.cluster_snapshots import CLUSTER, INVENTORY
from tests.unit.test_rotate_certs_decisions import expiring

NOW = datetime(2026, 11, 30, tzinfo=UTC)
LABELLED = Inventory(new_nodes={"labels": {"pool": "batch"}, "taints": ["gpu:NoSchedule"]})


def plans() -> dict[str, Plan]:
    upgrade = UpgradeNodeCommand(node="cp-1", to_version="v1.32.0")
    cluster = UpgradeClusterCommand(to_version="v1.31.3", max_unavailable=2)
    provision = ProvisionNodeCommand.model_validate({"node": "worker-9", "address": "10.0.0.9"})
    drains = {node.name: NO_PODS for node in CLUSTER}
    return {
        "upgrade node": decide_node_upgrade(
            upgrade, NodeUpgradeSnapshot("prod", INVENTORY, CLUSTER, {"cp-1": "v1.31.2"})
        ),
        "upgrade cluster": decide_cluster_upgrade(
            cluster,
            ClusterUpgradeSnapshot(
                "prod", INVENTORY, Path("/b"), {"cp-1": "v1.31.2"}, CLUSTER, drains
            ),
        ),
        "backup etcd": decide_backup(BackupSnapshot("prod", INVENTORY, CLUSTER, Path("/b"), 3)),
        "rotate certs": decide_rotation(
            RotateCertsCommand(),
            RotationSnapshot("prod", INVENTORY, True, CLUSTER, {"cp-1": expiring("cp-1", 9)}, NOW),
        ),
        "provision": decide_provision(
            provision, ProvisionSnapshot("prod", LABELLED, CLUSTER, "v1.31.2")
        ),
    }


@pytest.mark.parametrize("verb", list(plans()))
def test_a_stored_plan_reads_back_with_the_same_digest_and_builds_every_step_by_name(
    verb: str,
) -> None:
    plan = plans()[verb]
    stored = Plan.model_validate_json(plan.model_dump_json())
    assert stored.digest == plan.digest and stored.steps == plan.steps
    built = [build_step(planned) for planned in stored.steps]
    assert [step.name for step in built] == [planned.name for planned in plan.steps]
    assert [step.title for step in built] == [planned.title for planned in plan.steps]


def test_an_upgrade_plan_carries_what_each_step_needs() -> None:
    steps = {step.name: step for step in map(build_step, plans()["upgrade node"].steps)}
    cordon, kubeadm = steps["cordon"], steps["kubeadm-upgrade"]
    assert isinstance(cordon, CordonForUpgrade) and not cordon.params.was_unschedulable
    assert isinstance(kubeadm, KubeadmUpgrade)
    assert (kubeadm.params.apply, kubeadm.params.version) == (True, "v1.32.0")
    assert kubeadm.command.argv == ("kubeadm", "upgrade", "apply", "v1.32.0", "--yes")
    package, gate = steps["kubeadm-package"], steps["health-gate"]
    assert isinstance(package, UpgradeKubeadm) and package.at.host.name == "cp-1"
    assert isinstance(gate, HealthGate) and gate.expect.kubelet_version == "v1.32.0"


def test_a_rolling_upgrade_plan_names_its_workers_and_room() -> None:
    workers = build_step(plans()["upgrade cluster"].steps[-1])
    assert isinstance(workers, UpgradeWorkers)
    assert workers.params.nodes == ["worker-1", "worker-2", "worker-3"]
    assert workers.params.max_unavailable == 2


def test_a_provision_plan_reaches_the_new_host_by_its_address_and_keeps_the_approved_taints() -> (
    None
):
    steps = {step.name: step for step in map(build_step, plans()["provision"].steps)}
    swap, join, ready = steps["swap-off"], steps["join"], steps["node-ready"]
    assert isinstance(swap, SwapOff) and swap.host.address == "10.0.0.9"
    assert isinstance(join, JoinCluster) and join.params.control_plane == "cp-1"
    assert join.params.labels == {"pool": "batch"}
    assert [(t.key, t.effect) for t in join.params.taints] == [("gpu", "NoSchedule")]
    assert isinstance(ready, NodeReady)
    assert [(t.key, t.effect) for t in ready.params.taints] == [("gpu", "NoSchedule")]
