"""Where `backup etcd` takes its snapshot, decided from the nodes the API lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.base import PlanError
from playbooks.etcd_backup import BackupSnapshot, decide_backup
from playbooks.kube import NodeView
from tests.unit.cluster_snapshots import INVENTORY, node


def seen(nodes: list[NodeView]) -> BackupSnapshot:
    return BackupSnapshot("prod", INVENTORY, nodes, Path("/var/backups/kubegate"), 7)


def test_the_snapshot_is_taken_on_the_first_ready_control_plane_by_name() -> None:
    nodes = [
        node("cp-2", control_plane=True),
        node("cp-1", control_plane=True, ready=False),
        node("cp-3", control_plane=True),
        node("worker-1"),
    ]
    plan = decide_backup(seen(nodes))
    assert plan.facts == {"control_plane": "cp-2"}
    assert [step.name for step in plan.steps] == ["snapshot", "verify", "copy-off-host"]
    assert plan.steps[0].touches == ["node/cp-2"]
    assert "https://127.0.0.1:2379" in plan.steps[0].title
    assert plan.steps[2].title == (
        "Read it with sudo, copy it off the host, seal it (AES-256-GCM, key in Vault) "
        "into /var/backups/kubegate (keep 7)"
    )
    assert plan.locks == ["etcd-backup"] and plan.risk == "low"


def test_a_control_plane_kubegate_cannot_reach_is_passed_over() -> None:
    nodes = [node("cp-1", control_plane=True, ip=None), node("cp-2", control_plane=True)]
    assert decide_backup(seen(nodes)).facts == {"control_plane": "cp-2"}


def test_no_ready_control_plane_refuses_the_backup_naming_the_cluster() -> None:
    with pytest.raises(PlanError, match="No Ready control-plane node in cluster prod"):
        decide_backup(seen([node("cp-1", control_plane=True, ready=False), node("worker-1")]))
