"""Upgrade the whole cluster: etcd snapshot first, then the control planes one at a time, then
the workers rolling with at most `--max-unavailable` nodes unschedulable at once.
"""

from __future__ import annotations

from typing import ClassVar

from commands import Command, UpgradeClusterCommand
from playbooks.base import ClusterHandle, PlanError, Playbook, Step, StepContext, StepResult
from playbooks.drain import snapshot
from playbooks.etcd_backup import CopyOffHost, SaveSnapshot, VerifySnapshot, control_plane_target
from playbooks.kube import NodeView
from playbooks.plan import Plan, PlannedStep
from playbooks.rolling import roll
from playbooks.upgrade import UpgradePlaybook
from playbooks.versions import Version, skew_problems


class UpgradeControlPlanes(Step):
    name: ClassVar[str] = "upgrade-control-planes"

    def __init__(self, title: str, *, nodes: list[str], version: str, max_unavailable: int) -> None:
        super().__init__(title)
        self.nodes, self.version, self.max_unavailable = nodes, version, max_unavailable

    async def run(self, ctx: StepContext) -> StepResult:
        return await roll(
            ctx, self.nodes, self.version, max_unavailable=self.max_unavailable, at_once=1
        )


class UpgradeWorkers(UpgradeControlPlanes):
    name: ClassVar[str] = "upgrade-workers"

    async def run(self, ctx: StepContext) -> StepResult:
        return await roll(ctx, self.nodes, self.version, max_unavailable=self.max_unavailable)


def _version(text: str) -> Version:
    version = Version.parse(text)
    if version is None:
        raise PlanError(f"kubegate cannot read `{text}` as a Kubernetes version.")
    return version


async def plan_cluster_upgrade(command: UpgradeClusterCommand, cluster: ClusterHandle) -> Plan:
    target, api_server = _version(command.to_version), _version(await cluster.kube.server_version())
    nodes = await cluster.kube.list_nodes()
    control_planes = cluster.inventory.control_plane_order(nodes)
    if not control_planes:
        raise PlanError(
            f"No control-plane node found in cluster {cluster.name}: set `control_planes` in the inventory."
        )
    problems = skew_problems(
        node=control_planes[0].name,
        kubelet=api_server,
        target=target,
        api_server=api_server,
        moves_api_server=True,
    )
    if problems:
        raise PlanError(
            f"Refusing to upgrade cluster {cluster.name} to {target}; nothing was changed. "
            + " ".join(problems)
        )
    behind = [n for n in nodes if _version(n.kubelet_version) < target]
    cps = [
        n.name
        for n in control_planes
        if n in behind or (n is control_planes[0] and api_server < target)
    ]
    workers = [
        n.name
        for n in sorted(behind, key=lambda n: n.name)
        if n.name not in {c.name for c in control_planes}
    ]
    if not cps and not workers:
        nothing: str | None = f"Every node of {cluster.name} already runs {target}; nothing to do."
    else:
        nothing = None
        await _refuse_pod_loss(cluster, workers + cps)
    cordoned = sorted(n.name for n in nodes if n.unschedulable)
    if workers and len(set(cordoned) - set(workers)) >= command.max_unavailable:
        raise PlanError(
            f"{len(cordoned)} node(s) are already cordoned ({', '.join(cordoned)}): "
            f"--max-unavailable {command.max_unavailable} leaves no room. Uncordon them or allow more."
        )
    await control_plane_target(cluster)  # the etcd snapshot needs a reachable, Ready control plane
    return Plan(
        verb="upgrade",
        cluster=cluster.name,
        target="cluster",
        title=command.summary(),
        steps=[
            PlannedStep(
                name=SaveSnapshot.name,
                title="etcd snapshot on a control plane (before anything else)",
            ),
            PlannedStep(name=VerifySnapshot.name, title="Verify the snapshot"),
            PlannedStep(
                name=CopyOffHost.name, title=f"Copy it off the host to {cluster.backup_dir}"
            ),
            PlannedStep(
                name=UpgradeControlPlanes.name,
                title=f"Upgrade control planes one at a time: {', '.join(cps) or 'none left'}",
            ),
            PlannedStep(
                name=UpgradeWorkers.name,
                title=f"Upgrade {len(workers)} worker(s), at most {command.max_unavailable} "
                f"unschedulable at once: {', '.join(workers) or 'none left'}",
            ),
        ],
        facts={
            "api_server_version": str(api_server),
            "control_planes": cps,
            "workers": workers,
            "cordoned": cordoned,
        },
        preview=[
            f"API server {api_server} → {target}; nodes behind: {len(behind)} of {len(nodes)}",
            *(_node_line(n) for n in nodes),
        ],
        risk="high",
        nothing_to_do=nothing,
        locks=["*"],
    )


async def _refuse_pod_loss(cluster: ClusterHandle, names: list[str]) -> None:
    reasons = []
    for name in names:
        selection, _ = await snapshot(cluster, name)
        for reason in selection.blockers(force=False, delete_emptydir_data=False):
            reasons.append(f"{name}: {reason}")
    if reasons:
        raise PlanError(
            "Refusing to upgrade the cluster; nothing was changed. Draining would lose pods — "
            + " ".join(reasons)
            + " Drain those nodes first with the flags, then upgrade."
        )


def _node_line(node: NodeView) -> str:
    state = "cordoned" if node.unschedulable else "schedulable"
    return f"{node.name}: kubelet {node.kubelet_version}, {'Ready' if node.ready else 'NotReady'}, {state}"


def cluster_steps(plan: Plan, command: UpgradeClusterCommand) -> list[Step]:
    titles = [step.title for step in plan.steps]
    cps, workers = list(plan.facts["control_planes"]), list(plan.facts["workers"])
    n = command.max_unavailable
    return [
        SaveSnapshot(titles[0]),
        VerifySnapshot(titles[1]),
        CopyOffHost(titles[2]),
        UpgradeControlPlanes(titles[3], nodes=cps, version=command.to_version, max_unavailable=n),
        UpgradeWorkers(titles[4], nodes=workers, version=command.to_version, max_unavailable=n),
    ]


class UpgradeAnyPlaybook(Playbook):
    """`upgrade <node>` and `upgrade cluster` share the verb (and its policy): pick by target."""

    verb: ClassVar[str] = "upgrade"

    def __init__(self) -> None:
        self.node = UpgradePlaybook()

    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        if isinstance(command, UpgradeClusterCommand):
            return await plan_cluster_upgrade(command, cluster)
        return await self.node.plan(command, cluster)

    def steps(self, plan: Plan, command: Command) -> list[Step]:
        if isinstance(command, UpgradeClusterCommand):
            return cluster_steps(plan, command)
        return self.node.steps(plan, command)

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        if approved.target == "cluster":
            return None  # every fact counts: nodes behind, API server version, cordons
        return self.node.drift(approved, fresh)
