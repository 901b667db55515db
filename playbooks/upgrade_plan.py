"""Planning one node's upgrade: observe the cluster into a snapshot (I/O), then decide the plan
or the refusal from that snapshot alone (pure: the unit tests call it with data).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from commands import DrainCommand, UpgradeNodeCommand, format_duration
from playbooks.base import ClusterHandle, PlanError
from playbooks.drain import EvictPodsParams, WaitUntilGoneParams, drain_facts, snapshot
from playbooks.etcd_backup import CopyOffHostParams, SaveSnapshotParams, VerifySnapshotParams
from playbooks.health import HEALTH_TIMEOUT_S, HealthGateParams, Healthy
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.packages import PackagesAt, UpgradeKubeadmParams, UpgradeKubeletParams
from playbooks.plan import Plan, PlannedStep, StepParams
from playbooks.pods import DrainSelection, Pdb, eviction_preview
from playbooks.remote import NodeRef
from playbooks.right_host import (
    ConfirmHostParams,
    HostAnswer,
    ask_hosts,
    host_lines,
    refuse_wrong_hosts,
)
from playbooks.upgrade_api_servers import described, read_api_servers
from playbooks.upgrade_etcd import EtcdHealthyParams, refuse_unhealthy_etcd
from playbooks.upgrade_room import CONTROL_PLANE_LOCK
from playbooks.upgrade_steps import (
    CordonForUpgradeParams,
    KubeadmUpgradeParams,
    RestartKubeletParams,
    UncordonIfItWasParams,
)
from playbooks.versions import Skew, Version, skew_problems

NO_PODS = DrainSelection(evict=[], daemonset=[], mirror=[], bare=[], empty_dir=[])


@dataclass(frozen=True)
class NodeUpgradeSnapshot:
    """What upgrading one node is decided from, as the cluster was when it was read."""

    cluster: str
    inventory: Inventory
    nodes: list[NodeView]
    # Each control plane's own API server version (playbooks/upgrade_api_servers.py).
    api_servers: dict[str, str]
    # The node's pods and the PDBs as a drain sees them (none when there is no such node).
    drain: DrainSelection = NO_PODS
    pdbs: list[Pdb] = field(default_factory=list)
    # What the host at the node's SSH address said of who it is; None when it was not asked.
    host: HostAnswer | None = None


async def observe_node_upgrade(node: str, cluster: ClusterHandle) -> NodeUpgradeSnapshot:
    nodes = await cluster.kube.list_nodes()
    if not any(n.name == node for n in nodes):
        api_servers = await read_api_servers(cluster, nodes)
        return NodeUpgradeSnapshot(cluster.name, cluster.inventory, nodes, api_servers)
    # Independent reads, at once: a rolling upgrade plans again before every node.
    api_servers, (selection, pdbs) = await asyncio.gather(
        read_api_servers(cluster, nodes), snapshot(cluster, node)
    )
    return NodeUpgradeSnapshot(cluster.name, cluster.inventory, nodes, api_servers, selection, pdbs)


async def plan_node_upgrade(
    command: UpgradeNodeCommand,
    cluster: ClusterHandle,
    *,
    cordoned_before: bool | None = None,
    snapshot: bool = True,
    ask_host: bool = True,
) -> Plan:
    """The node's upgrade plan. `ask_host` off: the host is not asked who it is now, for a
    caller that runs the plan at once (its first step, confirm-host, asks before the cordon)."""
    seen = await observe_node_upgrade(command.node, cluster)
    plan = decide_node_upgrade(command, seen, cordoned_before=cordoned_before, snapshot=snapshot)
    if plan.nothing_to_do is None and ask_host:
        # Only a node that will be changed is asked who it is; a node at the target is left alone.
        hosts = await ask_hosts(cluster, [find_node(seen, command.node)])
        seen = dataclasses.replace(seen, host=hosts.get(command.node))
        plan = decide_node_upgrade(
            command, seen, cordoned_before=cordoned_before, snapshot=snapshot
        )
    if plan.facts["role"] == "control-plane" and plan.nothing_to_do is None:
        await refuse_unhealthy_etcd(cluster, seen.nodes, f"{command.node} to {command.to_version}")
    return plan


def parse_version(text: str, what: str) -> Version:
    version = Version.parse(text)
    if version is None:
        raise PlanError(f"kubegate cannot read {what} `{text}` as a Kubernetes version.")
    return version


def find_node(seen: NodeUpgradeSnapshot, name: str) -> NodeView:
    for node in seen.nodes:
        if node.name == name:
            return node
    raise PlanError(
        f"There is no node `{name}` in cluster {seen.cluster}. `/kube nodes` lists them."
    )


def procedure(inventory: Inventory, nodes: list[NodeView], node: NodeView) -> tuple[str, str]:
    """The node's role and kubeadm procedure: `apply` on the first control plane, else `node`."""
    if not inventory.is_control_plane(node):
        return "worker", "node"
    order = inventory.control_plane_order(nodes)
    return "control-plane", "apply" if order and order[0].name == node.name else "node"


@dataclass(frozen=True)
class Procedure:
    """How this node is upgraded: kubeadm's verb, its role, its packages and their source."""

    apply: bool  # `kubeadm upgrade apply` (the first control plane), else `upgrade node`
    control_plane: bool
    manager: str
    source: str | None  # the new minor's repository to switch to first; None: same minor
    snapshot: bool  # an etcd snapshot before `kubeadm upgrade apply`
    drain: DrainCommand  # the node's drain, with --delete-emptydir-data/--force as asked
    evict: int
    was_unschedulable: bool


def planned_steps(node: NodeView, target: Version, how: Procedure) -> list[PlannedStep]:
    """The planned steps with their parameters, as the approvers read them."""
    name, version = node.name, str(target)
    at = PackagesAt(host=NodeRef(name=name), version=version, source=how.source)
    cordon = CordonForUpgradeParams(
        node=name,
        was_unschedulable=how.was_unschedulable,
        from_version=node.kubelet_version,
        to_version=version,
    )
    kubeadm = KubeadmUpgradeParams(
        node=name, version=version, apply=how.apply, control_plane=how.control_plane
    )
    titles = step_titles(node, target, how)
    # Drained first: the node is out of service before anything on it changes, and a failure
    # at any later step leaves it cordoned, its workloads safe elsewhere. The health gate
    # comes before the uncordon: pods go back only onto a node that passed it.
    steps: list[tuple[StepParams, str]] = [
        (ConfirmHostParams(host=NodeRef(name=name)), titles["confirm-host"]),
        (cordon, titles["cordon"]),
        (EvictPodsParams.of(how.drain), titles["evict"]),
        (WaitUntilGoneParams(node=name), titles["wait"]),
        (UpgradeKubeadmParams(at=at), titles["kubeadm-package"]),
        (kubeadm, titles["kubeadm"]),
        (UpgradeKubeletParams(at=at), titles["kubelet-packages"]),
        (RestartKubeletParams(node=name, version=version), titles["restart"]),
        (HealthGateParams(expect=Healthy(node=name, kubelet_version=version)), titles["health"]),
        (UncordonIfItWasParams(node=name), titles["uncordon"]),
    ]
    if how.snapshot:  # the cluster's state as it was, before kubeadm moves its version
        steps[4:4] = [
            (SaveSnapshotParams(), "etcd snapshot before `kubeadm upgrade apply`"),
            (VerifySnapshotParams(), "Verify the snapshot"),
            (CopyOffHostParams(), "Copy it off the host, sealed"),
        ]
    if how.control_plane:
        steps.insert(1, (EtcdHealthyParams(node=name), titles["etcd"]))
    return [
        PlannedStep.of(
            each, title, touches=[] if isinstance(each, ConfirmHostParams) else [f"node/{name}"]
        )
        for each, title in steps
    ]


def step_titles(node: NodeView, target: Version, how: Procedure) -> dict[str, str]:
    """Each step's title, as the approvers read it."""
    held = ", held" if how.manager == "apt" else ""
    state = "cordoned already" if node.unschedulable else "schedulable now"
    timeout = format_duration(DrainCommand(node=node.name).timeout)
    switch = (
        f"Switch the package source to {target.minor_line} ({how.source}), then upgrade"
        if how.source
        else "Upgrade"
    )
    moves = " (moves its API server)" if how.control_plane else ""
    return {
        "confirm-host": f"Confirm the host at {node.name}'s address is {node.name} (asked again "
        "before anything changes there)",
        "etcd": "etcd healthy with every member up (`etcdctl endpoint health --cluster`)",
        "cordon": f"Drain: cordon {node.name} ({state})",
        "evict": f"Drain: evict {how.evict} pod(s) through their PDBs",
        "wait": f"Drain: wait until they are gone (timeout {timeout})",
        "kubeadm-package": f"{switch} the kubeadm package to {target.package} "
        f"({how.manager}{held})",
        "kubeadm": f"`kubeadm upgrade apply {target} --yes` on {node.name} (moves the "
        "cluster's version)"
        if how.apply
        else f"`kubeadm upgrade node` on {node.name}{moves}",
        "kubelet-packages": f"Upgrade kubelet and kubectl to {target.package} "
        f"({how.manager}{held})",
        "restart": "Restart the kubelet (`systemctl daemon-reload`, `systemctl restart kubelet`)",
        "health": f"Health gate before uncordon: Ready, no pressure, kubelet {target}, "
        f"DaemonSet pods Ready (timeout {HEALTH_TIMEOUT_S / 60:.0f}m)",
        "uncordon": f"Uncordon {node.name}"
        + (" (no: it was cordoned before)" if how.was_unschedulable else ""),
    }


def api_server_versions(seen: NodeUpgradeSnapshot) -> dict[str, Version]:
    return {
        name: parse_version(text, f"{name}'s API server version")
        for name, text in seen.api_servers.items()
    }


def oldest_kubelet(nodes: list[NodeView]) -> tuple[str, Version] | None:
    """The node whose kubelet is oldest: how far `kubeadm upgrade apply` may move the servers."""
    kubelets = [(n.name, Version.parse(n.kubelet_version)) for n in nodes]
    known = [(name, version) for name, version in kubelets if version is not None]
    return min(known, key=lambda item: item[1]) if known else None


def refuse_skew(
    node: NodeView, target: Version, seen: NodeUpgradeSnapshot, *, role: str, kubeadm: str
) -> str | None:
    """The nothing-to-do sentence when the node is there already; raises on a skew rule."""
    kubelet = parse_version(node.kubelet_version, f"{node.name}'s kubelet version")
    api_servers = api_server_versions(seen)
    own = api_servers.get(node.name)
    if kubelet == target and (own is None or own >= target):
        return f"{node.name} already runs {target}; nothing to do."
    skew = Skew(api_servers, oldest_kubelet(seen.nodes) if kubeadm == "apply" else None)
    problems = skew_problems(
        node=node.name,
        kubelet=kubelet,
        target=target,
        skew=skew,
        procedure=kubeadm if role == "control-plane" else "worker",
    )
    if problems:
        raise PlanError(
            f"Refusing to upgrade {node.name} to {target}; nothing was changed. "
            + " ".join(p[0].upper() + p[1:] for p in problems)
        )
    return None


def refuse_pod_loss(command: UpgradeNodeCommand, selection: DrainSelection) -> None:
    """The node's drain refuses what it would lose unless the flags say to, as `drain` does."""
    blockers = selection.blockers(
        force=command.force, delete_emptydir_data=command.delete_emptydir_data
    )
    if blockers:
        raise PlanError(
            f"Refusing to upgrade {command.node}; nothing was changed. Draining it would lose "
            "pods: " + " ".join(blockers)
        )


def pods_lost(selection: DrainSelection) -> list[str]:
    """The plan's line naming each pod whose data or existence its drain gives up."""
    lost = [f"{p.key} (emptyDir data)" for p in selection.empty_dir]
    lost += [f"{p.key} (no controller: gone for good)" for p in selection.bare]
    return [f"Lost by the drain: {', '.join(lost)}"] if lost else []


def refuse_unreachable(inventory: Inventory, node: NodeView) -> None:
    if inventory.target(node) is None:
        raise PlanError(
            f"kubegate does not know how to reach {node.name} over SSH: it has "
            "no InternalIP and no address in the inventory."
        )


def new_source(inventory: Inventory, node: str, kubelet: Version, target: Version) -> str | None:
    """The target minor's package repository when the upgrade changes minor; None otherwise."""
    if (kubelet.major, kubelet.minor) == (target.major, target.minor):
        return None
    return inventory.package_repository.url(inventory.package_manager_of(node), target.minor_line)


def preview(
    seen: NodeUpgradeSnapshot, node: NodeView, role: str, kubelet: Version, target: Version
) -> list[str]:
    state = "cordoned already" if node.unschedulable else "schedulable now"
    return [
        f"{node.name} ({role}): kubelet {kubelet} → {target} · {described(seen.api_servers)} · "
        f"{'Ready' if node.ready else 'NotReady'}, {state}",
        *eviction_preview(seen.drain, seen.pdbs),
        *pods_lost(seen.drain),
        *only_api_server(seen, node, role),
        *host_lines([seen.host] if seen.host else []),
    ]


def only_api_server(seen: NodeUpgradeSnapshot, node: NodeView, role: str) -> list[str]:
    """kubeadm restarts the node's kube-apiserver with its new manifest: on the only control
    plane, the whole API is away meanwhile, which the approvers should know."""
    if role != "control-plane" or len(seen.inventory.control_plane_order(seen.nodes)) != 1:
        return []
    return [
        f"⚠️ {node.name} is the only control plane: the Kubernetes API is briefly unavailable "
        "while kubeadm restarts its kube-apiserver; kubegate waits for it to come back"
    ]


def decide_node_upgrade(
    command: UpgradeNodeCommand,
    seen: NodeUpgradeSnapshot,
    *,
    cordoned_before: bool | None = None,
    snapshot: bool = True,
) -> Plan:
    """The plan to upgrade `command.node`, or a PlanError saying why not. Pure.

    `cordoned_before`: whether the node was cordoned before the job began, when the job (a
    rolling upgrade) knows better than the snapshot; by default, as the snapshot shows it.
    `snapshot`: False when the job took its etcd snapshot already (a cluster upgrade)."""
    node = find_node(seen, command.node)
    target = parse_version(command.to_version, "the target version")
    kubelet = parse_version(node.kubelet_version, f"{node.name}'s kubelet version")
    role, kubeadm = procedure(seen.inventory, seen.nodes, node)
    refuse_unreachable(seen.inventory, node)
    nothing = refuse_skew(node, target, seen, role=role, kubeadm=kubeadm)
    if nothing is None:
        refuse_wrong_hosts([seen.host] if seen.host else [], f"upgrade {node.name}")
        refuse_pod_loss(command, seen.drain)
    was_unschedulable = node.unschedulable if cordoned_before is None else cordoned_before
    facts: dict[str, Any] = {
        **drain_facts(seen.drain, seen.pdbs),
        "node": node.name,
        "kubelet_version": str(kubelet),
        "api_server_version": described(seen.api_servers),
        "role": role,
        "kubeadm": kubeadm,
        "was_unschedulable": was_unschedulable,
    }
    how = Procedure(
        apply=kubeadm == "apply",
        control_plane=role == "control-plane",
        manager=seen.inventory.package_manager_of(node.name),
        source=new_source(seen.inventory, node.name, kubelet, target),
        evict=len(seen.drain.evict),
        was_unschedulable=was_unschedulable,
        snapshot=kubeadm == "apply" and snapshot,
        drain=DrainCommand(
            node=node.name,
            delete_emptydir_data=command.delete_emptydir_data,
            force=command.force,
        ),
    )
    steps = planned_steps(node, target, how)
    return Plan(
        verb="upgrade",
        cluster=seen.cluster,
        target=node.name,
        title=command.summary(),
        steps=steps,
        facts=facts,
        preview=preview(seen, node, role, kubelet, target),
        risk="high" if role == "control-plane" else "medium",
        nothing_to_do=nothing,
        # Never two control planes changed at once, whatever verb changes them.
        locks=[f"node/{node.name}", *([CONTROL_PLANE_LOCK] if role == "control-plane" else [])],
    )
