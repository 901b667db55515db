"""Cordon and uncordon: mark a node (un)schedulable by patching spec.unschedulable.

The cordon step remembers whether the node was schedulable before, so an abort only
uncordons a node this job itself cordoned.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from commands import CordonCommand, UncordonCommand
from playbooks.base import (
    ClusterHandle,
    PlanError,
    Playbook,
    Step,
    StepContext,
    StepOutcome,
    StepResult,
)
from playbooks.kube import NodeView
from playbooks.plan import Plan, PlannedStep, StepParams


async def read_node(cluster: ClusterHandle, name: str) -> NodeView:
    node = await cluster.kube.get_node(name)
    if node is None:
        raise PlanError(
            f"There is no node `{name}` in cluster {cluster.name}. `/kube nodes` lists them."
        )
    return node


def _schedulable_words(node: NodeView) -> str:
    return "cordoned now" if node.unschedulable else "schedulable now"


class SetSchedulableParams(StepParams):
    step: Literal["set-schedulable"] = "set-schedulable"
    node: str
    unschedulable: bool


class SchedulingChange(StepOutcome):
    """Whether this job changed the node, and what it was before (for the undo)."""

    changed: bool
    was_unschedulable: bool


class SetSchedulable(Step[SetSchedulableParams]):
    """Patch spec.unschedulable to the wanted value, reporting a node already there."""

    name: ClassVar[str] = "set-schedulable"
    params_model: ClassVar[type[StepParams]] = SetSchedulableParams

    @property
    def node(self) -> str:
        return self.params.node

    @property
    def unschedulable(self) -> bool:
        return self.params.unschedulable

    async def run(self, ctx: StepContext) -> StepResult:
        before = await read_node(ctx.cluster, self.node)
        word = "cordoned" if self.unschedulable else "uncordoned"
        if before.unschedulable == self.unschedulable:
            return StepResult.done(
                f"{self.node} was already {word}; nothing changed",
                SchedulingChange(changed=False, was_unschedulable=before.unschedulable),
            )
        after = await ctx.cluster.kube.set_unschedulable(self.node, self.unschedulable)
        if after.unschedulable != self.unschedulable:
            return StepResult.failed(f"the API accepted the patch but {self.node} is not {word}")
        return StepResult.done(
            f"{self.node} {word}",
            SchedulingChange(changed=True, was_unschedulable=before.unschedulable),
        )

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        node = await read_node(ctx.cluster, self.node)
        if node.unschedulable != self.unschedulable:
            return None
        # We cannot know whether we or someone else made the change: claim nothing to undo.
        return StepResult.done(
            f"{self.node} was already done before the restart",
            SchedulingChange(changed=False, was_unschedulable=node.unschedulable),
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        if not result.outcome(SchedulingChange).changed:
            return None
        again = "uncordoned" if self.unschedulable else "cordoned"
        # The live state decides: if someone already put it back, there is nothing to undo.
        node = await read_node(ctx.cluster, self.node)
        if node.unschedulable != self.unschedulable:
            return f"{self.node} was already {again} by someone else; left as it is"
        await ctx.cluster.kube.set_unschedulable(self.node, not self.unschedulable)
        return f"{self.node} {again} again, as it was before"


def decide_scheduling(node: NodeView, *, verb: str, cluster: str, unschedulable: bool) -> Plan:
    """The (un)cordon plan for a node as observed (pure: no cluster access)."""
    action = "Cordon" if unschedulable else "Uncordon"
    nothing = None
    if node.unschedulable == unschedulable:
        state = "cordoned" if unschedulable else "schedulable"
        nothing = f"{node.name} is already {state}; nothing to do."
    ready = "Ready" if node.ready else "NotReady"
    return Plan(
        verb=verb,
        cluster=cluster,
        target=node.name,
        title=f"{action} {node.name}",
        steps=[
            PlannedStep.of(
                SetSchedulableParams(node=node.name, unschedulable=unschedulable),
                f"{action} {node.name} ({_schedulable_words(node)})",
                touches=[f"node/{node.name}"],
            )
        ],
        facts={"node": node.name, "node_exists": True, "unschedulable": node.unschedulable},
        preview=[
            f"{node.name}: {ready}, kubelet {node.kubelet_version}, {_schedulable_words(node)}"
        ],
        risk="low",
        nothing_to_do=nothing,
        locks=[f"node/{node.name}"],
    )


class CordonPlaybook(Playbook[CordonCommand]):
    verb: ClassVar[str] = "cordon"
    command_type = CordonCommand

    async def plan(self, command: CordonCommand, cluster: ClusterHandle) -> Plan:
        node = await read_node(cluster, command.node)
        return decide_scheduling(node, verb=self.verb, cluster=cluster.name, unschedulable=True)


class UncordonPlaybook(Playbook[UncordonCommand]):
    verb: ClassVar[str] = "uncordon"
    command_type = UncordonCommand

    async def plan(self, command: UncordonCommand, cluster: ClusterHandle) -> Plan:
        node = await read_node(cluster, command.node)
        return decide_scheduling(node, verb=self.verb, cluster=cluster.name, unschedulable=False)
