"""Upgrade the whole cluster: etcd snapshot first, then the control planes one at a time, then
the workers rolling with at most `--max-unavailable` nodes unschedulable at once.
"""

from __future__ import annotations

from typing import ClassVar

from commands import Command, UpgradeClusterCommand
from playbooks.base import ClusterHandle, Playbook, Step, StepContext, StepResult
from playbooks.etcd_backup import CopyOffHost, SaveSnapshot, VerifySnapshot
from playbooks.plan import Plan
from playbooks.rolling import roll
from playbooks.upgrade import UpgradePlaybook
from playbooks.upgrade_cluster_plan import (
    UPGRADE_CONTROL_PLANES,
    UPGRADE_WORKERS,
    plan_cluster_upgrade,
)


class UpgradeControlPlanes(Step):
    name: ClassVar[str] = UPGRADE_CONTROL_PLANES

    def __init__(self, title: str, *, nodes: list[str], version: str, max_unavailable: int) -> None:
        super().__init__(title)
        self.nodes, self.version, self.max_unavailable = nodes, version, max_unavailable

    async def run(self, ctx: StepContext) -> StepResult:
        return await roll(
            ctx, self.nodes, self.version, max_unavailable=self.max_unavailable, at_once=1
        )


class UpgradeWorkers(UpgradeControlPlanes):
    name: ClassVar[str] = UPGRADE_WORKERS

    async def run(self, ctx: StepContext) -> StepResult:
        return await roll(ctx, self.nodes, self.version, max_unavailable=self.max_unavailable)


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
