"""Planning a whole-cluster upgrade: observe every node and its pods (I/O), then decide from
that snapshot alone (pure): which control planes and workers are behind, what would refuse it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from commands import UpgradeClusterCommand
from playbooks.base import ClusterHandle, PlanError
from playbooks.drain import snapshot
from playbooks.etcd_backup import (
    CopyOffHostParams,
    SaveSnapshotParams,
    VerifySnapshotParams,
    no_snapshot_source,
    snapshot_source,
)
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.plan import Plan, PlannedStep, StepParams
from playbooks.pods import DrainSelection
from playbooks.right_host import HostAnswer, ask_hosts, host_lines, refuse_wrong_hosts
from playbooks.upgrade_api_servers import described, read_api_servers
from playbooks.upgrade_etcd import refuse_unhealthy_etcd
from playbooks.upgrade_plan import oldest_kubelet, parse_version
from playbooks.versions import Skew, Version, api_server_problems


class UpgradeControlPlanesParams(StepParams):
    step: Literal["upgrade-control-planes"] = "upgrade-control-planes"
    nodes: list[str]  # in the inventory's order: the first one moves the API server
    version: str
    max_unavailable: int
    delete_emptydir_data: bool = False
    force: bool = False


class UpgradeWorkersParams(StepParams):
    step: Literal["upgrade-workers"] = "upgrade-workers"
    nodes: list[str]
    version: str
    max_unavailable: int
    delete_emptydir_data: bool = False
    force: bool = False


@dataclass(frozen=True)
class ClusterUpgradeSnapshot:
    """What a cluster upgrade is decided from, as the cluster was when it was read."""

    cluster: str
    inventory: Inventory
    backup_dir: Path
    # Each control plane's own API server version (playbooks/upgrade_api_servers.py).
    api_servers: dict[str, str]
    nodes: list[NodeView]
    # Every node's pods as a drain would see them, by node name.
    drains: dict[str, DrainSelection]
    # What each node's host said of who it is, by node name (all asked at once).
    hosts: dict[str, HostAnswer] = field(default_factory=dict)


async def observe_cluster_upgrade(cluster: ClusterHandle) -> ClusterUpgradeSnapshot:
    nodes = await cluster.kube.list_nodes()
    api_servers = await read_api_servers(cluster, nodes)
    drains = {node.name: (await snapshot(cluster, node.name))[0] for node in nodes}
    return ClusterUpgradeSnapshot(
        cluster.name, cluster.inventory, cluster.backup_dir, api_servers, nodes, drains
    )


async def plan_cluster_upgrade(command: UpgradeClusterCommand, cluster: ClusterHandle) -> Plan:
    seen = await observe_cluster_upgrade(cluster)
    plan = decide_cluster_upgrade(command, seen)
    if plan.nothing_to_do is None:
        # The hosts it will run commands on are asked who they are; the others are left alone.
        reached = set(plan.facts["control_planes"] + plan.facts["workers"])
        source = snapshot_source(seen.inventory, seen.nodes)
        reached |= {source.node} if source is not None else set()
        asked = await ask_hosts(cluster, [n for n in seen.nodes if n.name in reached])
        seen = dataclasses.replace(seen, hosts=asked)
        plan = decide_cluster_upgrade(command, seen)
    if plan.facts["control_planes"] and plan.nothing_to_do is None:
        await refuse_unhealthy_etcd(
            cluster, seen.nodes, f"cluster {cluster.name} to {command.to_version}"
        )
    return plan


@dataclass(frozen=True)
class Behind:
    """The nodes the upgrade will take, in the order it takes them."""

    control_planes: list[str]
    workers: list[str]
    count: int  # nodes whose kubelet is older than the target


def nodes_behind(
    seen: ClusterUpgradeSnapshot, target: Version, api_servers: dict[str, Version]
) -> Behind:
    control_planes = seen.inventory.control_plane_order(seen.nodes)
    behind = [
        n for n in seen.nodes if parse_version(n.kubelet_version, "a kubelet version") < target
    ]
    # A control plane also goes when only its API server is behind: its kubeadm moves it.
    cps = [
        n.name for n in control_planes if n in behind or api_servers.get(n.name, target) < target
    ]
    ours = {c.name for c in control_planes}
    workers = [n.name for n in sorted(behind, key=lambda n: n.name) if n.name not in ours]
    return Behind(cps, workers, len(behind))


def refuse_skew(
    seen: ClusterUpgradeSnapshot, target: Version, api_servers: dict[str, Version]
) -> None:
    """The cluster as a whole: `kubeadm upgrade apply` on the first control plane must accept
    `target`, and no node may be more than one minor behind it (kubeadm's one at a time)."""
    control_planes = seen.inventory.control_plane_order(seen.nodes)
    if not control_planes:
        raise PlanError(
            f"No control-plane node found in cluster {seen.cluster}: "
            "set `control_planes` in the inventory."
        )
    problems = api_server_problems(target, Skew(api_servers, oldest_kubelet(seen.nodes)))
    kubelets = [(n.name, parse_version(n.kubelet_version, "a kubelet version")) for n in seen.nodes]
    far = [f"{name} ({at})" for name, at in kubelets if at < target and _two_minors(at, target)]
    if far:
        problems.append(
            f"{', '.join(far)} would skip a minor version: kubeadm upgrades one minor at a "
            "time. Bring them to the cluster's current minor first."
        )
    if problems:
        raise PlanError(
            f"Refusing to upgrade cluster {seen.cluster} to {target}; nothing was changed. "
            + " ".join(problems)
        )


def _two_minors(current: Version, target: Version) -> bool:
    return current.major != target.major or target.minor - current.minor > 1


def refuse_pod_loss(
    seen: ClusterUpgradeSnapshot, names: list[str], command: UpgradeClusterCommand
) -> None:
    reasons = [
        f"{name}: {reason}"
        for name in names
        for reason in seen.drains[name].blockers(
            force=command.force, delete_emptydir_data=command.delete_emptydir_data
        )
    ]
    if reasons:
        raise PlanError(
            "Refusing to upgrade the cluster; nothing was changed. Draining would lose pods — "
            + " ".join(reasons)
        )


def pods_lost(seen: ClusterUpgradeSnapshot, names: list[str]) -> list[str]:
    lost = [
        f"{pod.key} on {name} ({'emptyDir data' if pod in drain.empty_dir else 'no controller'})"
        for name in names
        for drain in [seen.drains[name]]
        for pod in [*drain.empty_dir, *drain.bare]
    ]
    return [f"Lost by the drains: {', '.join(lost)}"] if lost else []


def refuse_no_room(cordoned: list[str], workers: list[str], max_unavailable: int) -> None:
    """Nodes cordoned by others count against --max-unavailable: refuse when none is left."""
    if workers and len(set(cordoned) - set(workers)) >= max_unavailable:
        raise PlanError(
            f"{len(cordoned)} node(s) are already cordoned ({', '.join(cordoned)}): "
            f"--max-unavailable {max_unavailable} leaves no room. Uncordon them or allow more."
        )


def decide_cluster_upgrade(command: UpgradeClusterCommand, seen: ClusterUpgradeSnapshot) -> Plan:
    """The rollout plan, or a PlanError saying why not. Pure."""
    target = parse_version(command.to_version, "the target version")
    api_servers = {
        name: parse_version(text, f"{name}'s API server version")
        for name, text in seen.api_servers.items()
    }
    refuse_skew(seen, target, api_servers)
    behind = nodes_behind(seen, target, api_servers)
    nothing = None
    if not behind.control_planes and not behind.workers:
        nothing = f"Every node of {seen.cluster} already runs {target}; nothing to do."
    else:
        refuse_pod_loss(seen, behind.workers + behind.control_planes, command)
    cordoned = sorted(n.name for n in seen.nodes if n.unschedulable)
    refuse_no_room(cordoned, behind.workers, command.max_unavailable)
    source = snapshot_source(seen.inventory, seen.nodes)
    if source is None:
        raise no_snapshot_source(seen.cluster)  # the etcd snapshot comes before anything else
    reached = hosts_reached(seen, behind, source.node) if nothing is None else []
    refuse_wrong_hosts(reached, f"upgrade cluster {seen.cluster}")
    return Plan(
        verb="upgrade",
        cluster=seen.cluster,
        target="cluster",
        title=command.summary(),
        steps=cluster_steps(seen, behind, command),
        facts={
            "api_server_version": described(seen.api_servers),
            "control_planes": behind.control_planes,
            "workers": behind.workers,
            "cordoned": cordoned,
        },
        preview=[
            f"{described(seen.api_servers)} → {target}; "
            f"nodes behind: {behind.count} of {len(seen.nodes)}",
            *(node_line(n) for n in seen.nodes),
            *pods_lost(seen, behind.control_planes + behind.workers),
            *host_lines(reached),
        ],
        risk="high",
        nothing_to_do=nothing,
        locks=["*"],
    )


def hosts_reached(seen: ClusterUpgradeSnapshot, behind: Behind, source: str) -> list[HostAnswer]:
    """The answers of the hosts the upgrade will run commands on: the etcd snapshot's control
    plane and every node behind, in the order the upgrade takes them. Pure."""
    names = dict.fromkeys([source, *behind.control_planes, *behind.workers])
    return [seen.hosts[name] for name in names if name in seen.hosts]


def cluster_steps(
    seen: ClusterUpgradeSnapshot, behind: Behind, command: UpgradeClusterCommand
) -> list[PlannedStep]:
    cps, workers = behind.control_planes, behind.workers
    version, room = command.to_version, command.max_unavailable
    flags = {"delete_emptydir_data": command.delete_emptydir_data, "force": command.force}
    return [
        PlannedStep.of(
            SaveSnapshotParams(), "etcd snapshot on a control plane (before anything else)"
        ),
        PlannedStep.of(VerifySnapshotParams(), "Verify the snapshot"),
        PlannedStep.of(CopyOffHostParams(), f"Copy it off the host to {seen.backup_dir}"),
        PlannedStep.of(
            UpgradeControlPlanesParams(nodes=cps, version=version, max_unavailable=room, **flags),
            f"Upgrade control planes one at a time: {', '.join(cps) or 'none left'}",
        ),
        PlannedStep.of(
            UpgradeWorkersParams(nodes=workers, version=version, max_unavailable=room, **flags),
            f"Upgrade {len(workers)} worker(s), at most {room} "
            f"unschedulable at once: {', '.join(workers) or 'none left'}",
        ),
    ]


def node_line(node: NodeView) -> str:
    state = "cordoned" if node.unschedulable else "schedulable"
    ready = "Ready" if node.ready else "NotReady"
    return f"{node.name}: kubelet {node.kubelet_version}, {ready}, {state}"
