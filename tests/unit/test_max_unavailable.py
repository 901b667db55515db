"""The cluster-wide cap on unschedulable nodes holds every verb that takes a node down."""

from __future__ import annotations

import dataclasses

import pytest

from commands import Command, parse_command
from playbooks import Plan, PlanError
from playbooks.kube import NodeView
from playbooks.upgrade_room import refuse_beyond_cap, with_control_plane_lock
from tests.unit.cluster_snapshots import CLUSTER, INVENTORY


def plan_for(verb: str, target: str) -> Plan:
    return Plan(verb=verb, cluster="prod", target=target, title=f"{verb} {target}", steps=[])


def cordoned(*names: str) -> list[NodeView]:
    return [dataclasses.replace(n, unschedulable=n.name in names) for n in CLUSTER]


def refusal(command: Command, plan: Plan, nodes: list[NodeView], cap: int) -> str:
    with pytest.raises(PlanError) as refused:
        refuse_beyond_cap(command, plan, nodes, cap)
    return refused.value.message


def test_a_drain_beyond_the_cap_is_refused_naming_the_nodes_already_unschedulable() -> None:
    command = parse_command("drain worker-1")
    said = refusal(command, plan_for("drain", "worker-1"), cordoned("worker-2"), cap=1)
    assert "at most 1 unschedulable node(s)" in said and "worker-2 already is" in said


def test_a_single_node_upgrade_is_held_to_the_cap_too() -> None:
    command = parse_command("upgrade worker-1 --to v1.31.3")
    nodes = cordoned("worker-2", "worker-3")
    said = refusal(command, plan_for("upgrade", "worker-1"), nodes, cap=2)
    assert "worker-2, worker-3 already are" in said
    refuse_beyond_cap(command, plan_for("upgrade", "worker-1"), nodes, cap=3)


def test_a_node_already_cordoned_takes_nothing_more_down() -> None:
    command = parse_command("drain worker-2")
    refuse_beyond_cap(command, plan_for("drain", "worker-2"), cordoned("worker-2"), cap=1)


def test_a_cluster_upgrade_may_not_ask_for_more_than_the_cap() -> None:
    command = parse_command("upgrade cluster --to v1.31.3 --max-unavailable 3")
    said = refusal(command, plan_for("upgrade", "cluster"), cordoned(), cap=2)
    assert "--max-unavailable 3" in said and "at most 2" in said


def test_any_job_touching_a_control_plane_holds_the_control_plane_lock() -> None:
    drain_cp = with_control_plane_lock(plan_for("drain", "cp-1"), INVENTORY, CLUSTER)
    assert "control-plane" in drain_cp.locks
    drain_worker = with_control_plane_lock(plan_for("drain", "worker-1"), INVENTORY, CLUSTER)
    assert "control-plane" not in drain_worker.locks
