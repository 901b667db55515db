"""Planning a node's provisioning: observe the cluster and the new host (I/O), then decide from
that snapshot alone (pure): what must never be provisioned, where the join token comes from,
what the node registers with, the steps.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, replace

from pydantic import ValidationError

from commands import NewNodeTaint, ProvisionNodeCommand
from playbooks.base import ClusterHandle, PlanError
from playbooks.health import HEALTH_TIMEOUT_S, Healthy
from playbooks.host_prep import host_preparation
from playbooks.inventory import Inventory
from playbooks.join import DeleteJoinTokensParams, JoinClusterParams
from playbooks.kube import NodeView
from playbooks.packages import PackagesAt
from playbooks.pki_backup import pki_vault_path
from playbooks.plan import Plan, PlannedStep, StepParams
from playbooks.provision_control_plane import (
    CONTROL_PLANE_TAINT,
    control_plane_refusal,
    control_plane_steps,
    observe_control_plane,
    pki_missing_from_vault,
)
from playbooks.provision_sources import PackageSourceParams
from playbooks.provision_steps import NodeReadyParams, ProvisionPackagesParams
from playbooks.remote import NodeRef
from playbooks.ssh import HostKeyError, SshError
from playbooks.upgrade_room import CONTROL_PLANE_LOCK
from playbooks.versions import Version

PROBE_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class HostProbe:
    """What the new host answered before anything was planned: its own hostname, or why SSH
    refused it (a host key that is not the pinned one) or could not reach it."""

    hostname: str | None = None
    host_key_problem: str | None = None
    unreachable: str | None = None


@dataclass(frozen=True)
class ProvisionSnapshot:
    """What provisioning is decided from: the cluster's nodes and version, the inventory, and
    the new host's answer (None when it was not asked, e.g. outside the node subnet)."""

    cluster: str
    inventory: Inventory
    nodes: list[NodeView]
    api_server_version: str
    host: HostProbe | None = None
    # A control plane's: the cluster's controlPlaneEndpoint and why etcd is not whole (None:
    # it is), read only when a control plane is asked for; whether kubegate has a Vault.
    control_plane_endpoint: str | None = None
    etcd_problem: str | None = None
    vault_configured: bool = False
    # The cluster keeps its PKI in Vault but `/kube backup pki` has stored none there yet.
    pki_missing_from_vault: bool = False


async def probe_host(cluster: ClusterHandle, name: str, address: str) -> HostProbe:
    """`hostname` over SSH as the login user (no sudo: it needs none): reads nothing secret,
    changes nothing; the connection alone checks the pinned host key."""
    target = replace(cluster.inventory.target_for_address(name, address), sudo=False)
    try:
        answer = await (await cluster.ssh()).run(target, ["hostname"], timeout=PROBE_TIMEOUT_S)
    except HostKeyError as error:
        return HostProbe(host_key_problem=error.message)
    except SshError as error:
        return HostProbe(unreachable=error.message)
    if not answer.ok:
        return HostProbe(unreachable=f"`hostname` failed there (exit {answer.exit_status})")
    return HostProbe(hostname=answer.stdout.strip())


async def observe_provision(
    command: ProvisionNodeCommand, cluster: ClusterHandle
) -> ProvisionSnapshot:
    """The cluster, then the host, but only for a request that passes every refusal that needs
    no host: kubegate never reaches out to an address outside the node subnet or for a name
    that is taken."""
    nodes = await cluster.kube.list_nodes()
    version = await cluster.kube.server_version()
    seen = ProvisionSnapshot(
        cluster.name, cluster.inventory, nodes, version, vault_configured=cluster.vault is not None
    )
    refuse_request(command, seen)
    if command.role == "control-plane":
        endpoint, problem = await observe_control_plane(cluster, join_source(seen), nodes)
        missing = await pki_missing_from_vault(cluster)
        seen = replace(
            seen,
            control_plane_endpoint=endpoint,
            etcd_problem=problem,
            pki_missing_from_vault=missing,
        )
        refuse_control_plane(command, seen)
    return replace(seen, host=await probe_host(cluster, command.node, str(command.address)))


async def plan_provision(command: ProvisionNodeCommand, cluster: ClusterHandle) -> Plan:
    return decide_provision(command, await observe_provision(command, cluster))


def configured_taints(inventory: Inventory) -> list[NewNodeTaint]:
    """The inventory's `new_nodes.taints`; a bad one is the config's fault, said so."""
    taints = []
    for text in inventory.new_nodes.taints:
        try:
            taints.append(NewNodeTaint.parse(text))
        except (ValidationError, ValueError) as error:
            reason = error.errors()[0]["msg"] if isinstance(error, ValidationError) else str(error)
            raise PlanError(
                f"The inventory's new_nodes taint `{text}` is not valid: {reason}. "
                "Fix kubegate's config."
            ) from error
    return taints


def registration(
    command: ProvisionNodeCommand, inventory: Inventory
) -> tuple[dict[str, str], list[NewNodeTaint]]:
    """Labels and taints the node registers with: the inventory's for every new node, then the
    request's (a label given in the request wins; a taint of the same key and effect too)."""
    labels = {**inventory.new_nodes.labels, **command.labels}
    # Taints given to kubeadm replace its default: a control plane's NoSchedule is kept.
    kept = [CONTROL_PLANE_TAINT] if command.role == "control-plane" else []
    taints = {(t.key, t.effect): t for t in [*kept, *configured_taints(inventory)]}
    taints.update({(t.key, t.effect): t for t in command.taints})
    return labels, list(taints.values())


def join_source(seen: ProvisionSnapshot) -> NodeView:
    """The first Ready control plane kubegate can reach: where the join token is created."""
    for node in seen.inventory.control_plane_order(seen.nodes):
        if node.ready and seen.inventory.target(node) is not None:
            return node
    raise PlanError(f"No Ready control plane in cluster {seen.cluster} to create a join token on.")


def refuse_request(command: ProvisionNodeCommand, seen: ProvisionSnapshot) -> None:
    """Refuse what must never be provisioned: an address outside the node subnet, a name or an
    address some node already has, a host that is not the one whose key is pinned."""
    name, address, inventory = command.node, str(command.address), seen.inventory
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
    refuse_host(address, seen.host)


def refuse_control_plane(command: ProvisionNodeCommand, seen: ProvisionSnapshot) -> None:
    """A control plane only with a stable endpoint and etcd whole (read for it)."""
    if command.role != "control-plane":
        return
    refusal = control_plane_refusal(
        cluster=seen.cluster,
        endpoint=seen.control_plane_endpoint,
        etcd_problem=seen.etcd_problem,
        inventory=seen.inventory,
        vault_configured=seen.vault_configured,
        pki_missing_from_vault=seen.pki_missing_from_vault,
    )
    if refusal is not None:
        raise PlanError(refusal)


def refuse_host(address: str, host: HostProbe | None) -> None:
    if host is None:
        return
    if host.host_key_problem is not None:
        raise PlanError(f"kubegate will not provision {address}: {host.host_key_problem}")
    if host.unreachable is not None:
        raise PlanError(
            f"kubegate cannot reach {address} over SSH ({host.unreachable}); nothing was "
            "changed. Check that the host is up and kubegate's key is authorized there."
        )


def planned_steps(
    command: ProvisionNodeCommand,
    seen: ProvisionSnapshot,
    *,
    version: Version,
    source: str,
) -> list[PlannedStep]:
    name = command.node
    host = NodeRef(name=name, address=str(command.address))
    manager = seen.inventory.package_manager_of(name)
    steps: list[tuple[StepParams, str]] = [
        *host_preparation(host, minor=version.minor),
        (
            PackageSourceParams(host=host, minor_line=version.minor_line),
            f"Add the pkgs.k8s.io {version.minor_line} package source and its signing key "
            f"({manager})",
        ),
        (
            ProvisionPackagesParams(at=PackagesAt(host=host, version=str(version))),
            f"Install kubeadm, kubelet and kubectl {version.package} ({manager}, held)",
        ),
        *joining(command, seen, version=version, source=source),
    ]
    return [PlannedStep.of(params, title, touches=[f"node/{name}"]) for params, title in steps]


def joining(
    command: ProvisionNodeCommand, seen: ProvisionSnapshot, *, version: Version, source: str
) -> list[tuple[StepParams, str]]:
    """The join and what checks it; a control plane's with its CA and etcd steps around it."""
    name = command.node
    host = NodeRef(name=name, address=str(command.address))
    labels, taints = registration(command, seen.inventory)
    registered = [f"{k}={v}" for k, v in labels.items()] + [t.taint for t in taints]
    control_plane = command.role == "control-plane"
    in_vault = control_plane and seen.inventory.pki_in_vault
    join = JoinClusterParams(
        host=host,
        control_plane=source,
        version=str(version),
        labels=labels,
        taints=taints,
        as_control_plane=control_plane,
        upload_certs=control_plane and not in_vault,
        api_server_port=api_server_port(seen.inventory, name, str(command.address)),
    )
    what = f"{name} (a control plane)" if control_plane else name
    key = (
        " and a certificate key from `kubeadm init phase upload-certs` there (never shown; "
        "its Secret deleted after)"
        if join.upload_certs
        else ""
    )
    before, after = (
        control_plane_steps(host, seen.inventory, seen.cluster) if control_plane else ([], [])
    )
    return [
        *before,
        (
            join,
            f"Join as {what} with a 1h token from {source} (never shown; deleted after){key}"
            + (f", registering with {', '.join(registered)}" if registered else ""),
        ),
        (
            DeleteJoinTokensParams(node=name, control_plane=source),
            f"Make sure no join token for {name} is left on {source}",
        ),
        *after,
        (
            NodeReadyParams(
                expect=Healthy(node=name, kubelet_version=str(version)),
                labels=labels,
                taints=taints,
            ),
            f"Wait until {name} is Ready with kubelet {version} "
            f"(timeout {HEALTH_TIMEOUT_S / 60:.0f}m)",
        ),
    ]


def api_server_port(inventory: Inventory, name: str, address: str) -> int:
    """The port the new control plane's API server binds: the inventory's for it, else 6443."""
    url = urllib.parse.urlsplit(
        inventory.apiserver_url(inventory.target_for_address(name, address))
    )
    return url.port or 6443


def decide_provision(command: ProvisionNodeCommand, seen: ProvisionSnapshot) -> Plan:
    """The plan to prepare, join and label the host, or a PlanError saying why not. Pure."""
    refuse_request(command, seen)
    name, address = command.node, str(command.address)
    version = Version.parse(seen.api_server_version)
    if version is None:
        raise PlanError("kubegate cannot read the API server's version to install the same.")
    refuse_control_plane(command, seen)
    source = join_source(seen)
    labels, taints = registration(command, seen.inventory)
    control_plane = command.role == "control-plane"
    steps = planned_steps(command, seen, version=version, source=source.name)
    ssh = seen.inventory.target_for_address(name, address)
    hostname = seen.host.hostname if seen.host is not None else None
    called = f" (its hostname is {hostname}; it registers as {name})" if hostname else ""
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
            "labels": labels,
            "taints": [t.taint for t in taints],
            **({"control_plane_endpoint": seen.control_plane_endpoint} if control_plane else {}),
        },
        preview=[
            f"{name} at {address} (SSH {ssh.host}:{ssh.port} as {ssh.user}){called} joins "
            f"cluster {seen.cluster} as {'a control plane' if control_plane else 'a worker'} "
            f"at {version}",
            "It registers already tainted: "
            + (", ".join(t.taint for t in taints) if taints else "no taints asked"),
            f"Join token created on {source.name} for 1 hour; never shown, logged or audited; "
            "deleted once the node has joined",
            *(control_plane_preview(seen, source.name) if control_plane else []),
        ],
        risk="high" if control_plane else "medium",
        locks=[f"node/{name}", *([CONTROL_PLANE_LOCK] if control_plane else [])],
    )


def control_plane_preview(seen: ProvisionSnapshot, source: str) -> list[str]:
    ca = (
        f"The cluster's CA keys from Vault ({pki_vault_path(seen.inventory, seen.cluster)}), "
        "placed root's 0600 on the host; never shown"
        if seen.inventory.pki_in_vault
        else f"The shared certificates through kubeadm's certificate key (upload-certs on "
        f"{source}; the key never shown, its Secret deleted after the join)"
    )
    return [
        f"A new etcd member and API server behind {seen.control_plane_endpoint}; etcd is "
        "healthy with every member up now, and is checked again right before the join",
        ca,
    ]
