"""Planning a node's provisioning: observe the cluster (I/O), then decide from that snapshot
alone (pure): what must never be provisioned, where the join token comes from, the steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from commands import ProvisionNodeCommand, TaintCommand
from playbooks.base import ClusterHandle, PlanError
from playbooks.health import HEALTH_TIMEOUT_S, Healthy
from playbooks.host_prep import host_preparation
from playbooks.inventory import Inventory
from playbooks.join import JoinClusterParams
from playbooks.kube import NodeView
from playbooks.packages import PackagesAt
from playbooks.plan import Plan, PlannedStep
from playbooks.provision_steps import (
    LabelAndTaintParams,
    NodeReadyParams,
    ProvisionPackagesParams,
    taint_command,
)
from playbooks.remote import NodeRef
from playbooks.taints import EditTaintsParams
from playbooks.versions import Version


@dataclass(frozen=True)
class ProvisionSnapshot:
    """What provisioning is decided from: the cluster's nodes and version, and the inventory."""

    cluster: str
    inventory: Inventory
    nodes: list[NodeView]
    api_server_version: str


async def observe_provision(cluster: ClusterHandle) -> ProvisionSnapshot:
    nodes = await cluster.kube.list_nodes()
    version = await cluster.kube.server_version()
    return ProvisionSnapshot(cluster.name, cluster.inventory, nodes, version)


async def plan_provision(command: ProvisionNodeCommand, cluster: ClusterHandle) -> Plan:
    return decide_provision(command, await observe_provision(cluster))


def configured_taints(inventory: Inventory, node: str) -> list[TaintCommand]:
    """The inventory's `new_nodes.taints`; a bad one is the config's fault, said so."""
    taints = []
    for text in inventory.new_nodes.taints:
        try:
            taints.append(taint_command(node, text))
        except ValidationError as error:
            raise PlanError(
                f"The inventory's new_nodes taint `{text}` is not valid: "
                f"{error.errors()[0]['msg']}. Fix kubegate's config."
            ) from error
    return taints


def join_source(seen: ProvisionSnapshot) -> NodeView:
    """The first Ready control plane kubegate can reach: where the join token is created."""
    for node in seen.inventory.control_plane_order(seen.nodes):
        if node.ready and seen.inventory.target(node) is not None:
            return node
    raise PlanError(f"No Ready control plane in cluster {seen.cluster} to create a join token on.")


def refuse_request(command: ProvisionNodeCommand, seen: ProvisionSnapshot) -> None:
    """Refuse what must never be provisioned: a control plane (not yet), an address outside the
    node subnet, a name or an address some node already has."""
    name, address, inventory = command.node, str(command.address), seen.inventory
    if command.role == "control-plane":
        raise PlanError(
            "Provisioning a control-plane node is not available yet in this version "
            "of kubegate: provision it as a worker, or join it by hand."
        )
    if not inventory.in_node_subnet(address):
        raise PlanError(
            f"{address} is outside cluster {seen.cluster}'s node subnet "
            f"{inventory.node_subnet}: kubegate only provisions hosts there. "
            "Check the address."
        )
    if any(node.name == name for node in seen.nodes):
        raise PlanError(
            f"There is already a node `{name}` in cluster {seen.cluster}: "
            "pick another name (`/kube nodes` lists them)."
        )
    known = inventory.nodes.get(name)
    if known is not None and known.address not in (None, address):
        raise PlanError(
            f"kubegate's inventory has {name} at {known.address}, not {address}: "
            "check the address (or the inventory)."
        )
    holder = next((node.name for node in seen.nodes if node.internal_ip == address), None)
    if holder is not None:
        raise PlanError(f"{address} is already the address of node {holder}: check the address.")


def planned_steps(
    command: ProvisionNodeCommand,
    seen: ProvisionSnapshot,
    *,
    version: Version,
    source: str,
    taints: list[TaintCommand],
) -> list[PlannedStep]:
    name, labels = command.node, seen.inventory.new_nodes.labels
    host = NodeRef(name=name, address=str(command.address))
    manager = seen.inventory.package_manager_of(name)
    steps = [
        *host_preparation(host),
        (
            ProvisionPackagesParams(at=PackagesAt(host=host, version=str(version))),
            f"Install kubeadm, kubelet and kubectl {version.package} ({manager}, held)",
        ),
        (
            JoinClusterParams(host=host, control_plane=source),
            f"Join the cluster with a 1h token from {source} (the token is never shown)",
        ),
        (
            NodeReadyParams(expect=Healthy(node=name, kubelet_version=str(version))),
            f"Wait until {name} is Ready with kubelet {version} "
            f"(timeout {HEALTH_TIMEOUT_S / 60:.0f}m)",
        ),
    ]
    if labels or taints:
        shown = [f"{k}={v}" for k, v in labels.items()] + [t.taint for t in taints]
        wanted = LabelAndTaintParams(
            node=name, labels=labels, taints=[EditTaintsParams.of(t) for t in taints]
        )
        steps.append((wanted, f"Label and taint {name}: {', '.join(shown)}"))
    return [PlannedStep.of(params, title, touches=[f"node/{name}"]) for params, title in steps]


def decide_provision(command: ProvisionNodeCommand, seen: ProvisionSnapshot) -> Plan:
    """The plan to prepare, join and label the host, or a PlanError saying why not. Pure."""
    refuse_request(command, seen)
    name, address = command.node, str(command.address)
    version = Version.parse(seen.api_server_version)
    if version is None:
        raise PlanError("kubegate cannot read the API server's version to install the same.")
    source = join_source(seen)
    taints = configured_taints(seen.inventory, name)
    steps = planned_steps(command, seen, version=version, source=source.name, taints=taints)
    ssh = seen.inventory.target_for_address(name, address)
    return Plan(
        verb="provision",
        cluster=seen.cluster,
        target=name,
        title=command.summary(),
        steps=steps,
        facts={
            "node": name,
            "node_exists": False,
            "address": address,
            "role": command.role,
            "cluster_version": str(version),
            "join_from": source.name,
            "labels": seen.inventory.new_nodes.labels,
            "taints": [t.taint for t in taints],
        },
        preview=[
            f"{name} at {address} (SSH {ssh.host}:{ssh.port} as {ssh.user}) joins cluster "
            f"{seen.cluster} as a worker at {version}",
            f"Join token created on {source.name} for 1 hour; never shown, logged or audited",
        ],
        risk="medium",
        locks=[f"node/{name}"],
    )
