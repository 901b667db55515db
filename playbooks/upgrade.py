"""Upgrade one node the kubeadm way, drained first: cordon and evict, kubeadm package,
`kubeadm upgrade apply|node`, kubelet and kubectl packages, kubelet restart, uncordon (if it
was schedulable), health gate.
"""

from __future__ import annotations

from typing import Any, ClassVar

from commands import (
    Command,
    DrainCommand,
    UpgradeNodeCommand,
    format_duration,
)
from playbooks.base import ClusterHandle, PlanError, Playbook, Step, StepContext, StepResult
from playbooks.cordon import SetSchedulable, read_node
from playbooks.drain import EvictPods, WaitUntilGone, drain_drift, drain_facts, snapshot
from playbooks.health import HEALTH_TIMEOUT_S, HealthGate
from playbooks.kube import NodeView
from playbooks.packages import UpgradeKubeadm, UpgradeKubelet
from playbooks.plan import Plan, PlannedStep
from playbooks.pods import eviction_preview
from playbooks.remote import NodeRef, Remote, RemoteCommand
from playbooks.versions import Version, skew_problems

# The facts whose change since approval calls for a fresh one (besides the drain's).
UPGRADE_FACTS = {
    "kubelet_version": "kubelet version",
    "api_server_version": "API server version",
    "role": "role",
    "kubeadm": "kubeadm procedure",
}


class KubeadmUpgrade(Step):
    """`kubeadm upgrade apply vX --yes` on the first control plane, `kubeadm upgrade node`
    elsewhere; both are safe to run again, so on resume only `apply` checks the API server."""

    name: ClassVar[str] = "kubeadm-upgrade"

    def __init__(self, title: str, *, node: str, version: Version, apply: bool) -> None:
        super().__init__(title)
        self.node = node
        self.version = version
        self.apply = apply

    @property
    def command(self) -> RemoteCommand:
        if self.apply:
            return RemoteCommand.of("kubeadm", "upgrade", "apply", str(self.version), "--yes")
        return RemoteCommand.of("kubeadm", "upgrade", "node")

    async def run(self, ctx: StepContext) -> StepResult:
        remote = await Remote.open(ctx, NodeRef(self.node))
        ran = await remote.run_in_order([self.command])
        if isinstance(ran, StepResult):
            return ran
        return StepResult(ok=True, summary=f"`{self.command.label}` done on {self.node}")

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        if not self.apply:
            return None
        if Version.parse(await ctx.cluster.kube.server_version()) != self.version:
            return None
        return StepResult(ok=True, summary=f"the API server was already at {self.version}")


class CordonForUpgrade(SetSchedulable):
    name: ClassVar[str] = "cordon"

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        node = await read_node(ctx.cluster, self.node)
        if not node.unschedulable:
            return None
        # The job holds the node's lock: if it was schedulable when planned, we cordoned it.
        was = bool(ctx.plan.facts.get("was_unschedulable"))
        return StepResult(
            ok=True,
            summary=f"{self.node} was already cordoned before the restart",
            data={"changed": not was, "was_unschedulable": was},
        )


class RestartKubelet(Step):
    name: ClassVar[str] = "restart-kubelet"
    commands = (
        RemoteCommand.of("systemctl", "daemon-reload"),
        RemoteCommand.of("systemctl", "restart", "kubelet"),
    )

    def __init__(self, title: str, *, node: str, version: Version) -> None:
        super().__init__(title)
        self.node = node
        self.version = version

    async def run(self, ctx: StepContext) -> StepResult:
        remote = await Remote.open(ctx, NodeRef(self.node))
        ran = await remote.run_in_order(self.commands)
        if isinstance(ran, StepResult):
            return ran
        return StepResult(ok=True, summary=f"kubelet restarted on {self.node}")

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        node = await read_node(ctx.cluster, self.node)
        if Version.parse(node.kubelet_version) != self.version:
            return None
        return StepResult(ok=True, summary=f"the kubelet already reported {self.version}")


class UncordonIfItWas(Step):
    """Uncordon only a node that was schedulable before this job cordoned it."""

    name: ClassVar[str] = "uncordon"

    def __init__(self, title: str, *, node: str) -> None:
        super().__init__(title)
        self.node = node

    def _left_cordoned(self, ctx: StepContext) -> StepResult | None:
        if ctx.results[CordonForUpgrade.name].data.get("was_unschedulable"):
            return StepResult(
                ok=True, summary=f"{self.node} left cordoned: it was cordoned before this job"
            )
        return None

    async def run(self, ctx: StepContext) -> StepResult:
        skipped = self._left_cordoned(ctx)
        if skipped:
            return skipped
        after = await ctx.cluster.kube.set_unschedulable(self.node, False)
        if after.unschedulable:
            return StepResult(
                ok=False, summary=f"the API accepted the patch but {self.node} is still cordoned"
            )
        return StepResult(ok=True, summary=f"{self.node} uncordoned")

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        skipped = self._left_cordoned(ctx)
        if skipped:
            return skipped
        node = await read_node(ctx.cluster, self.node)
        return (
            None if node.unschedulable else StepResult(ok=True, summary=f"{self.node} uncordoned")
        )


def _version(text: str, what: str) -> Version:
    version = Version.parse(text)
    if version is None:
        raise PlanError(f"kubegate cannot read {what} `{text}` as a Kubernetes version.")
    return version


async def _procedure(cluster: ClusterHandle, node: NodeView) -> tuple[str, str]:
    """The node's role and kubeadm procedure: `apply` on the first control plane, else `node`."""
    if not cluster.inventory.is_control_plane(node):
        return "worker", "node"
    order = cluster.inventory.control_plane_order(await cluster.kube.list_nodes())
    return "control-plane", "apply" if order and order[0].name == node.name else "node"


def step_titles(
    node: NodeView, target: Version, *, kubeadm: str, manager: str, evict: int
) -> list[tuple[str, str]]:
    """The planned steps, by name, as the approvers read them."""
    held = ", held" if manager == "apt" else ""
    state = "cordoned already" if node.unschedulable else "schedulable now"
    kubeadm_title = (
        f"`kubeadm upgrade apply {target} --yes` on {node.name} (moves the API server)"
        if kubeadm == "apply"
        else f"`kubeadm upgrade node` on {node.name}"
    )
    drain_timeout = format_duration(DrainCommand(node=node.name).timeout)
    # Drained first: the node is out of service before anything on it changes, and a failure
    # at any later step leaves it cordoned, its workloads safe elsewhere.
    return [
        (CordonForUpgrade.name, f"Drain: cordon {node.name} ({state})"),
        (EvictPods.name, f"Drain: evict {evict} pod(s) through their PDBs"),
        (WaitUntilGone.name, f"Drain: wait until they are gone (timeout {drain_timeout})"),
        (UpgradeKubeadm.name, f"Upgrade the kubeadm package to {target.package} ({manager}{held})"),
        (KubeadmUpgrade.name, kubeadm_title),
        (UpgradeKubelet.name, f"Upgrade kubelet and kubectl to {target.package} ({manager}{held})"),
        (
            RestartKubelet.name,
            "Restart the kubelet (`systemctl daemon-reload`, `systemctl restart kubelet`)",
        ),
        (
            UncordonIfItWas.name,
            f"Uncordon {node.name}"
            + (" (no: it was cordoned before)" if node.unschedulable else ""),
        ),
        (
            HealthGate.name,
            f"Health gate: Ready, no pressure, kubelet {target}, DaemonSet pods Ready "
            f"(timeout {HEALTH_TIMEOUT_S / 60:.0f}m)",
        ),
    ]


def refuse_skew(
    node: str, kubelet: Version, target: Version, api_server: Version, *, kubeadm: str
) -> str | None:
    """The nothing-to-do sentence when the node is there already; raises on a skew rule."""
    if kubelet == target and api_server >= target:
        return f"{node} already runs {target}; nothing to do."
    problems = skew_problems(
        node=node,
        kubelet=kubelet,
        target=target,
        api_server=api_server,
        moves_api_server=kubeadm == "apply",
    )
    if problems:
        raise PlanError(
            f"Refusing to upgrade {node} to {target}; nothing was changed. "
            + " ".join(p[0].upper() + p[1:] for p in problems)
        )
    return None


async def plan_node_upgrade(command: UpgradeNodeCommand, cluster: ClusterHandle) -> Plan:
    node = await read_node(cluster, command.node)
    target = _version(command.to_version, "the target version")
    kubelet = _version(node.kubelet_version, f"{node.name}'s kubelet version")
    api_server = _version(await cluster.kube.server_version(), "the API server version")
    role, kubeadm = await _procedure(cluster, node)
    if cluster.inventory.target(node) is None:
        raise PlanError(
            f"kubegate does not know how to reach {node.name} over SSH: it has "
            "no InternalIP and no address in the inventory."
        )
    nothing = refuse_skew(node.name, kubelet, target, api_server, kubeadm=kubeadm)
    selection, pdbs = await snapshot(cluster, node.name)
    blockers = selection.blockers(force=False, delete_emptydir_data=False)
    if blockers and nothing is None:
        raise PlanError(
            f"Refusing to upgrade {node.name}; nothing was changed. Draining it would lose pods: "
            + " ".join(blockers)
            + f" `upgrade` takes no such flags: drain it first (`/kube drain {node.name}` with "
            "them), then upgrade."
        )
    manager = cluster.inventory.package_manager_of(node.name)
    titles = step_titles(node, target, kubeadm=kubeadm, manager=manager, evict=len(selection.evict))
    facts: dict[str, Any] = {
        **drain_facts(selection, pdbs),
        "node": node.name,
        "kubelet_version": str(kubelet),
        "api_server_version": str(api_server),
        "role": role,
        "kubeadm": kubeadm,
        "was_unschedulable": node.unschedulable,
    }
    state = "cordoned already" if node.unschedulable else "schedulable now"
    return Plan(
        verb="upgrade",
        cluster=cluster.name,
        target=node.name,
        title=command.summary(),
        steps=[
            PlannedStep(name=name, title=title, touches=[f"node/{node.name}"])
            for name, title in titles
        ],
        facts=facts,
        preview=[
            f"{node.name} ({role}): kubelet {kubelet} → {target} · API server {api_server} · "
            f"{'Ready' if node.ready else 'NotReady'}, {state}",
            *eviction_preview(selection, pdbs),
        ],
        risk="high" if role == "control-plane" else "medium",
        nothing_to_do=nothing,
        locks=[f"node/{node.name}"],
    )


class UpgradePlaybook(Playbook):
    verb: ClassVar[str] = "upgrade"

    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        assert isinstance(command, UpgradeNodeCommand)
        return await plan_node_upgrade(command, cluster)

    def steps(self, plan: Plan, command: Command) -> list[Step]:
        assert isinstance(command, UpgradeNodeCommand)
        node, titles = plan.target, [step.title for step in plan.steps]
        version = _version(command.to_version, "the target version")
        drain = DrainCommand(node=node)
        return [
            CordonForUpgrade(titles[0], node=node, unschedulable=True),
            EvictPods(titles[1], command=drain),
            WaitUntilGone(titles[2], node=node),
            UpgradeKubeadm(titles[3], node=NodeRef(node), version=version),
            KubeadmUpgrade(
                titles[4], node=node, version=version, apply=plan.facts.get("kubeadm") == "apply"
            ),
            UpgradeKubelet(titles[5], node=NodeRef(node), version=version),
            RestartKubelet(titles[6], node=node, version=version),
            UncordonIfItWas(titles[7], node=node),
            HealthGate(titles[8], node=node, kubelet_version=str(version)),
        ]

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        changes = [
            f"{words}: {approved.facts.get(fact)} then, {fresh.facts.get(fact)} now"
            for fact, words in UPGRADE_FACTS.items()
            if approved.facts.get(fact) != fresh.facts.get(fact)
        ]
        return changes + drain_drift(approved.facts, fresh.facts)
