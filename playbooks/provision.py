"""Provision a node: prepare the host, install kubeadm/kubelet/kubectl at the cluster's version,
join it with a fresh token from a control plane (a secret, kept in memory only), wait for it
to be Ready, then label and taint it as configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from pydantic import ValidationError

from commands import Command, ProvisionNodeCommand, TaintCommand
from playbooks.base import ClusterHandle, PlanError, Playbook, Step, StepContext, StepResult
from playbooks.health import HEALTH_TIMEOUT_S, HealthGate
from playbooks.host_prep import HOST_PREPARATION
from playbooks.kube import NodeView
from playbooks.packages import InstallPackages
from playbooks.plan import Plan, PlannedStep
from playbooks.remote import NodeRef, Remote, RemoteCommand, failed
from playbooks.ssh import SshError
from playbooks.taints import EditTaints
from playbooks.versions import Version

TOKEN_CREATE = RemoteCommand.of("kubeadm", "token", "create", "--print-join-command", "--ttl", "1h")
TOKEN = re.compile(r"[a-z0-9]{6}\.[a-z0-9]{16}")
ENDPOINT = re.compile(r"[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}")
CA_HASH = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class JoinCommand:
    endpoint: str
    token: str
    ca_hash: str

    @property
    def command(self) -> RemoteCommand:
        argv = (
            "kubeadm",
            "join",
            self.endpoint,
            "--token",
            self.token,
            "--discovery-token-ca-cert-hash",
            self.ca_hash,
        )
        return RemoteCommand(argv, f"kubeadm join {self.endpoint} --token … (secret)")


def parse_join_command(printed: str) -> JoinCommand | None:
    """What `kubeadm token create --print-join-command` printed, each value checked; None if
    it is not the plain worker join command kubegate expects."""
    words = printed.split()
    if words[:2] != ["kubeadm", "join"] or len(words) != 7:
        return None
    options = dict(zip(words[3::2], words[4::2], strict=True))
    endpoint, token = words[2], options.get("--token", "")
    ca_hash = options.get("--discovery-token-ca-cert-hash", "")
    if set(options) != {"--token", "--discovery-token-ca-cert-hash"}:
        return None
    if not (ENDPOINT.fullmatch(endpoint) and TOKEN.fullmatch(token) and CA_HASH.fullmatch(ca_hash)):
        return None
    return JoinCommand(endpoint, token, ca_hash)


class JoinCluster(Step):
    """Create a token and join with it in one step: the token lives only in this step's memory,
    so a restart in between never needs it again (a retry simply creates a new one)."""

    name: ClassVar[str] = "join"

    def __init__(self, title: str, *, node: NodeRef, control_plane: str) -> None:
        super().__init__(title)
        self.node = node
        self.control_plane = control_plane

    async def run(self, ctx: StepContext) -> StepResult:
        source = await Remote.open(ctx, NodeRef(self.control_plane))
        created = await source.run(TOKEN_CREATE)
        # Mask before anything can show it: the whole printed line and every token in it.
        ctx.secret(created.stdout.strip())
        for token in TOKEN.findall(created.stdout):
            ctx.secret(token)
            ctx.secret(token.split(".")[1])
        if not created.ok:
            return failed(created, TOKEN_CREATE.label)
        join = parse_join_command(created.stdout)
        if join is None:
            return StepResult(
                ok=False,
                summary=f"`{TOKEN_CREATE.label}` on {self.control_plane} "
                "printed no join command kubegate can read",
            )
        host = await Remote.open(ctx, self.node)
        try:
            joined = await host.run(join.command)
        except SshError as error:
            # The executor's message quotes the command line, token and all.
            said = error.message.replace(join.token, "[redacted]")
            return StepResult(
                ok=False, summary=f"kubeadm join on {self.node.name} could not run: {said}"
            )
        if not joined.ok:
            return failed(joined, join.command.label)
        return StepResult(
            ok=True,
            summary=f"{self.node.name} joined through {join.endpoint} "
            f"(token from {self.control_plane}, valid 1h)",
            output=joined.tail(5),
        )

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        if await ctx.cluster.kube.get_node(self.node.name) is None:
            return None
        return StepResult(
            ok=True, summary=f"{self.node.name} had already joined before the restart"
        )


class ProvisionPackages(InstallPackages):
    after: ClassVar[tuple[RemoteCommand, ...]] = (
        RemoteCommand.of("systemctl", "enable", "--now", "kubelet"),
    )


class NodeReady(HealthGate):
    name: ClassVar[str] = "node-ready"


class LabelAndTaint(Step):
    name: ClassVar[str] = "labels-taints"

    def __init__(
        self, title: str, *, node: str, labels: dict[str, str], taints: list[TaintCommand]
    ) -> None:
        super().__init__(title)
        self.node = node
        self.labels = labels
        self.taints = taints

    async def run(self, ctx: StepContext) -> StepResult:
        if self.labels:
            await ctx.cluster.kube.add_labels(self.node, self.labels)
        for taint in self.taints:
            result = await EditTaints(taint.summary(), command=taint).run(ctx)
            if not result.ok:
                return result
        done = [f"{key}={value}" for key, value in self.labels.items()] + [
            t.taint for t in self.taints
        ]
        return StepResult(ok=True, summary=f"{self.node} now carries {', '.join(done)}")


def taint_command(node: str, text: str) -> TaintCommand:
    """`key=value:Effect` or `key:Effect`, checked as `/kube taint` checks it."""
    head, _, effect = text.rpartition(":")
    key, _, value = head.partition("=")
    return TaintCommand(node=node, key=key, value=value or None, effect=effect)


def configured_taints(cluster: ClusterHandle, node: str) -> list[TaintCommand]:
    """The inventory's `new_nodes.taints`; a bad one is the config's fault, said so."""
    taints = []
    for text in cluster.inventory.new_nodes.taints:
        try:
            taints.append(taint_command(node, text))
        except ValidationError as error:
            raise PlanError(
                f"The inventory's new_nodes taint `{text}` is not valid: "
                f"{error.errors()[0]['msg']}. Fix kubegate's config."
            ) from error
    return taints


async def join_source(cluster: ClusterHandle, nodes: list[NodeView]) -> NodeView:
    """The first Ready control plane kubegate can reach: where the join token is created."""
    for node in cluster.inventory.control_plane_order(nodes):
        if node.ready and cluster.inventory.target(node) is not None:
            return node
    raise PlanError(f"No Ready control plane in cluster {cluster.name} to create a join token on.")


async def check_request(command: ProvisionNodeCommand, cluster: ClusterHandle) -> list[NodeView]:
    """Refuse what must never be provisioned; the cluster's nodes when all is well."""
    name, address = command.node, str(command.address)
    if command.role == "control-plane":
        raise PlanError(
            "Provisioning a control-plane node is not available yet in this version "
            "of kubegate: provision it as a worker, or join it by hand."
        )
    if not cluster.inventory.in_node_subnet(address):
        raise PlanError(
            f"{address} is outside cluster {cluster.name}'s node subnet "
            f"{cluster.inventory.node_subnet}: kubegate only provisions hosts there. "
            "Check the address."
        )
    nodes = await cluster.kube.list_nodes()
    if any(node.name == name for node in nodes):
        raise PlanError(
            f"There is already a node `{name}` in cluster {cluster.name}: "
            "pick another name (`/kube nodes` lists them)."
        )
    known = cluster.inventory.nodes.get(name)
    if known is not None and known.address not in (None, address):
        raise PlanError(
            f"kubegate's inventory has {name} at {known.address}, not {address}: "
            "check the address (or the inventory)."
        )
    holder = next((node.name for node in nodes if node.internal_ip == address), None)
    if holder is not None:
        raise PlanError(f"{address} is already the address of node {holder}: check the address.")
    return nodes


class ProvisionPlaybook(Playbook):
    verb: ClassVar[str] = "provision"

    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        assert isinstance(command, ProvisionNodeCommand)
        nodes = await check_request(command, cluster)
        name, address = command.node, str(command.address)
        version = Version.parse(await cluster.kube.server_version())
        if version is None:
            raise PlanError("kubegate cannot read the API server's version to install the same.")
        source = await join_source(cluster, nodes)
        taints = configured_taints(cluster, name)
        labels = cluster.inventory.new_nodes.labels
        manager = cluster.inventory.package_manager_of(name)
        ssh = cluster.inventory.target_for_address(name, address)
        titles = [(step.name, title) for step, title in HOST_PREPARATION] + [
            (
                ProvisionPackages.name,
                f"Install kubeadm, kubelet and kubectl {version.package} ({manager}, held)",
            ),
            (
                JoinCluster.name,
                f"Join the cluster with a 1h token from {source.name} (the token is never shown)",
            ),
            (
                NodeReady.name,
                f"Wait until {name} is Ready with kubelet {version} (timeout {HEALTH_TIMEOUT_S / 60:.0f}m)",
            ),
        ]
        if labels or taints:
            shown = [f"{k}={v}" for k, v in labels.items()] + [t.taint for t in taints]
            titles.append((LabelAndTaint.name, f"Label and taint {name}: {', '.join(shown)}"))
        return Plan(
            verb=self.verb,
            cluster=cluster.name,
            target=name,
            title=command.summary(),
            steps=[
                PlannedStep(name=step, title=title, touches=[f"node/{name}"])
                for step, title in titles
            ],
            facts={
                "node": name,
                "node_exists": False,
                "address": address,
                "role": command.role,
                "cluster_version": str(version),
                "join_from": source.name,
                "labels": labels,
                "taints": [t.taint for t in taints],
            },
            preview=[
                f"{name} at {address} (SSH {ssh.host}:{ssh.port} as {ssh.user}) joins cluster "
                f"{cluster.name} as a worker at {version}",
                f"Join token created on {source.name} for 1 hour; never shown, logged or audited",
            ],
            risk="medium",
            locks=[f"node/{name}"],
        )

    def steps(self, plan: Plan, command: Command) -> list[Step]:
        assert isinstance(command, ProvisionNodeCommand)
        node = NodeRef(plan.target, str(command.address))
        titles = [step.title for step in plan.steps]
        version = Version.parse(str(plan.facts["cluster_version"]))
        assert version is not None
        steps: list[Step] = [
            step(title, node=node)
            for (step, _), title in zip(HOST_PREPARATION, titles, strict=False)
        ]
        steps += [
            ProvisionPackages(titles[4], node=node, version=version),
            JoinCluster(titles[5], node=node, control_plane=str(plan.facts["join_from"])),
            NodeReady(titles[6], node=plan.target, kubelet_version=str(version)),
        ]
        if len(titles) > len(steps):
            # As planned and approved, whatever the config says by now.
            labels = dict(plan.facts.get("labels") or {})
            taints = [taint_command(plan.target, t) for t in plan.facts.get("taints") or []]
            steps.append(LabelAndTaint(titles[7], node=plan.target, labels=labels, taints=taints))
        return steps
