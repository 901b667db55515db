"""Upgrade the whole cluster: etcd snapshot first, then the control planes one at a time, then
the workers rolling with at most `--max-unavailable` nodes unschedulable at once. Planned in
playbooks/upgrade_cluster_plan.py. `upgrade <node>` shares the verb: one playbook plans both.
"""

from __future__ import annotations

from typing import Any, ClassVar

from commands import Command, UpgradeClusterCommand, UpgradeNodeCommand
from playbooks.base import ClusterHandle, Playbook, Step, StepContext, StepResult
from playbooks.plan import Plan, StepParams
from playbooks.rolling import PodLoss, roll
from playbooks.upgrade import node_facts_for_remaining, node_upgrade_drift
from playbooks.upgrade_cluster_plan import (
    UpgradeControlPlanesParams,
    UpgradeWorkersParams,
    plan_cluster_upgrade,
)
from playbooks.upgrade_plan import plan_node_upgrade

UpgradeCommand = UpgradeNodeCommand | UpgradeClusterCommand


class UpgradeControlPlanes(Step[UpgradeControlPlanesParams]):
    """Each control plane's whole upgrade in turn: never two control planes changed at once."""

    name: ClassVar[str] = "upgrade-control-planes"
    params_model: ClassVar[type[StepParams]] = UpgradeControlPlanesParams

    async def run(self, ctx: StepContext) -> StepResult:
        wave = self.params
        loss = PodLoss(delete_emptydir_data=wave.delete_emptydir_data, force=wave.force)
        return await roll(
            ctx,
            wave.nodes,
            wave.version,
            max_unavailable=wave.max_unavailable,
            at_once=1,
            loss=loss,
        )


class UpgradeWorkers(Step[UpgradeWorkersParams]):
    name: ClassVar[str] = "upgrade-workers"
    params_model: ClassVar[type[StepParams]] = UpgradeWorkersParams

    async def run(self, ctx: StepContext) -> StepResult:
        wave = self.params
        loss = PodLoss(delete_emptydir_data=wave.delete_emptydir_data, force=wave.force)
        return await roll(
            ctx, wave.nodes, wave.version, max_unavailable=wave.max_unavailable, loss=loss
        )


class UpgradeAnyPlaybook(Playbook[UpgradeCommand]):
    """`upgrade <node>` and `upgrade cluster` share the verb (and its policy): pick by target."""

    verb: ClassVar[str] = "upgrade"

    def narrow(self, command: Command) -> UpgradeCommand:
        if isinstance(command, UpgradeNodeCommand | UpgradeClusterCommand):
            return command
        raise TypeError(f"{self.verb} cannot plan {type(command).__name__}")

    async def plan(self, command: UpgradeCommand, cluster: ClusterHandle) -> Plan:
        if isinstance(command, UpgradeClusterCommand):
            return await plan_cluster_upgrade(command, cluster)
        return await plan_node_upgrade(command, cluster)

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        if approved.target == "cluster":
            return None  # every fact counts: nodes behind, API server version, cordons
        return node_upgrade_drift(approved, fresh)

    async def facts_for_remaining(
        self, approved: Plan, cluster: ClusterHandle, *, finished: frozenset[str]
    ) -> dict[str, Any]:
        if approved.target == "cluster":
            # Each node's upgrade is planned afresh when the rollout reaches it (and refuses
            # there what it must); the nodes approvers saw are the ones it takes.
            return approved.facts
        return await node_facts_for_remaining(approved, cluster, finished=finished)
