"""Rotate control-plane certificates the kubeadm way, one control plane at a time: check expiry,
`kubeadm certs renew all`, restart the static control-plane pods, check again, store the renewed
public certificates in Vault KV v2 with check-and-set. Planned here (observe, then a pure
decide); the steps are in playbooks/cert_rotation.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from commands import RotateCertsCommand
from playbooks.base import ClusterHandle, PlanError, Playbook
from playbooks.cert_checks import (
    CHECK_EXPIRATION,
    NodeExpiry,
    certificate_holders,
    check_expiration,
)
from playbooks.cert_rotation import (
    RENEW_ALL,
    CheckExpiryParams,
    CheckRenewedParams,
    RenewAndRestartParams,
    StoreInVaultParams,
    vault_path,
)
from playbooks.control_plane_health import check_etcd
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.kubeconfig_refresh import RefreshKubeconfigParams
from playbooks.plan import Plan, PlannedStep, StepParams
from playbooks.remote import Remote
from playbooks.right_host import HostAnswer, ask_hosts, refuse_wrong_hosts
from playbooks.static_pods import CONTROL_PLANE_PODS


@dataclass(frozen=True)
class RotationSnapshot:
    """What a rotation is decided from: the nodes, and each asked control plane's expiry table
    (read only when the request names control planes kubegate can reach)."""

    cluster: str
    inventory: Inventory
    vault_configured: bool
    nodes: list[NodeView]
    expiries: dict[str, NodeExpiry]
    observed_at: datetime
    etcd_problem: str | None = None  # what etcd said when it is not whole, asked on the first
    # What each asked control plane's host said of who it is: another host refuses the plan.
    hosts: dict[str, HostAnswer] = field(default_factory=dict)


async def observe_rotation(command: RotateCertsCommand, cluster: ClusterHandle) -> RotationSnapshot:
    nodes = await cluster.kube.list_nodes()
    try:
        targets = certificate_holders(cluster.name, cluster.inventory, nodes, command.node)
    except PlanError:
        targets = []  # nothing to read; deciding says why
    asked = {t.node for t in targets}
    hosts = await ask_hosts(cluster, [node for node in nodes if node.name in asked])
    if any(answer.wrong for answer in hosts.values()):
        targets = []  # nothing more is read from a host that is not its Node; deciding says why
    expiries = {t.node: await check_expiration(cluster, t) for t in targets}
    etcd_problem = None
    if targets:
        remote = Remote(await cluster.ssh(), targets[0], cluster.inventory.ssh.command_timeout)
        etcd_problem = await check_etcd(remote, cluster.inventory.etcd)
    return RotationSnapshot(
        cluster=cluster.name,
        inventory=cluster.inventory,
        vault_configured=cluster.vault is not None,
        nodes=nodes,
        expiries=expiries,
        observed_at=datetime.now(UTC),
        etcd_problem=etcd_problem,
        hosts=hosts,
    )


def decide_rotation(command: RotateCertsCommand, seen: RotationSnapshot) -> Plan:
    """Which control planes, one at a time, with their soonest expiry; a PlanError when the
    request names none kubegate can reach. Pure."""
    targets = certificate_holders(seen.cluster, seen.inventory, seen.nodes, command.node)
    doing = command.summary()
    refuse_wrong_hosts(seen.hosts.values(), doing[0].lower() + doing[1:])
    if seen.etcd_problem is not None:
        raise PlanError(
            f"Refused: {seen.etcd_problem}. Restarting control planes now could lose etcd's "
            "quorum; nothing was changed. Bring every member back "
            "(`etcdctl endpoint health --cluster` on a control plane), then ask again."
        )
    nodes = [target.node for target in targets]
    return Plan(
        verb=RotateCertsPlaybook.verb,
        cluster=seen.cluster,
        target=command.target,
        title=command.summary(),
        steps=planned_steps(seen, nodes),
        facts={"control_planes": nodes},
        preview=[
            *(seen.expiries[node].soonest_words(seen.observed_at) for node in nodes),
            *only_api_server_warning(seen),
        ],
        risk="high",
        locks=["*"],
    )


def only_api_server_warning(seen: RotationSnapshot) -> list[str]:
    """On a single control plane, restarting its static pods takes the cluster's only API
    server (and its only etcd member) away for a while, which kubeadm's certificate-management
    docs warn of: the approvers are told, and the job waits it out. Pure."""
    control_planes = seen.inventory.control_plane_order(seen.nodes)
    if len(control_planes) != 1:
        return []
    only = control_planes[0].name
    return [
        f"⚠️ {only} is the only control plane: the Kubernetes API is briefly unavailable while "
        "its kube-apiserver and etcd restart (seconds each); kubegate waits for it to come back"
    ]


class RotateCertsPlaybook(Playbook[RotateCertsCommand]):
    verb: ClassVar[str] = "rotate"
    command_type = RotateCertsCommand

    async def plan(self, command: RotateCertsCommand, cluster: ClusterHandle) -> Plan:
        return decide_rotation(command, await observe_rotation(command, cluster))

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        # Expiry dates are what the job changes; only a different set of nodes needs new votes.
        then, now = approved.facts.get("control_planes"), fresh.facts.get("control_planes")
        return [] if then == now else [f"control planes: {then} then, {now} now"]


def planned_steps(seen: RotationSnapshot, nodes: list[str]) -> list[PlannedStep]:
    inventory, where = seen.inventory, ", ".join(nodes)
    pause = inventory.static_pod_pause.total_seconds()
    vault = (
        (
            f"Store the renewed public certificates (*.crt, never keys) in Vault KV v2 at "
            f"{vault_path(inventory, seen.cluster, '<node>')} with check-and-set"
        )
        if seen.vault_configured
        else "Store the renewed certificates in Vault (skipped: no Vault configured)"
    )
    steps: list[tuple[StepParams, str]] = [
        (CheckExpiryParams(nodes=nodes), f"Check expiry on {where} (`{CHECK_EXPIRATION.label}`)"),
        (
            RenewAndRestartParams(nodes=nodes),
            f"On {where}, one node at a time, each only while etcd is healthy with every member "
            f"up: `{RENEW_ALL.label}`, then restart {', '.join(CONTROL_PLANE_PODS)} one by one "
            f"(manifest out for {pause:g} s, back, wait until that node's own kube-apiserver is "
            "ready and every etcd member healthy)",
        ),
        (
            CheckRenewedParams(nodes=nodes),
            "Check expiry again: every renewed certificate expires later than before",
        ),
        (
            RefreshKubeconfigParams(nodes=nodes),
            "Refresh kubegate's own kubeconfig from the renewed admin.conf (when it came from "
            "one), then check the API answers through it",
        ),
        (StoreInVaultParams(nodes=nodes), vault),
    ]
    touches = [f"node/{node}" for node in nodes]
    return [PlannedStep.of(params, title, touches=touches) for params, title in steps]
