"""Cordon and uncordon: mark a node (un)schedulable by patching spec.unschedulable.

The cordon step remembers whether the node was schedulable before, so an abort only
uncordons a node this job itself cordoned.
"""

from __future__ import annotations

from typing import ClassVar

from commands import Command, CordonCommand, UncordonCommand
from playbooks.base import ClusterHandle, PlanError, Playbook, Step, StepContext, StepResult
from playbooks.kube import NodeView
from playbooks.plan import Plan, PlannedStep


async def read_node(cluster: ClusterHandle, name: str) -> NodeView:
    node = await cluster.kube.get_node(name)
    if node is None:
        raise PlanError(
            f"There is no node `{name}` in cluster {cluster.name}. `/kube nodes` lists them."
        )
    return node


def _schedulable_words(node: NodeView) -> str:
    return "cordoned now" if node.unschedulable else "schedulable now"


class SetSchedulable(Step):
    """Patch spec.unschedulable to the wanted value, reporting a node already there."""

    name: ClassVar[str] = "set-schedulable"

    def __init__(self, title: str, *, node: str, unschedulable: bool) -> None:
        super().__init__(title)
        self.node = node
        self.unschedulable = unschedulable

    async def run(self, ctx: StepContext) -> StepResult:
        before = await read_node(ctx.cluster, self.node)
        word = "cordoned" if self.unschedulable else "uncordoned"
        if before.unschedulable == self.unschedulable:
            return StepResult(
                ok=True,
                summary=f"{self.node} was already {word}; nothing changed",
                data={"changed": False, "was_unschedulable": before.unschedulable},
            )
        after = await ctx.cluster.kube.set_unschedulable(self.node, self.unschedulable)
        if after.unschedulable != self.unschedulable:
            return StepResult(
                ok=False, summary=f"the API accepted the patch but {self.node} is not {word}"
            )
        return StepResult(
            ok=True,
            summary=f"{self.node} {word}",
            data={"changed": True, "was_unschedulable": before.unschedulable},
        )

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        node = await read_node(ctx.cluster, self.node)
        if node.unschedulable != self.unschedulable:
            return None
        # We cannot know whether we or someone else made the change: claim nothing to undo.
        return StepResult(
            ok=True,
            summary=f"{self.node} was already done before the restart",
            data={"changed": False, "was_unschedulable": node.unschedulable},
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        if not result.data.get("changed"):
            return None
        await ctx.cluster.kube.set_unschedulable(self.node, not self.unschedulable)
        return f"{self.node} {'uncordoned' if self.unschedulable else 'cordoned'} again, as it was before"


class _SchedulingPlaybook(Playbook):
    unschedulable: ClassVar[bool]

    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        assert isinstance(command, CordonCommand | UncordonCommand)
        node = await read_node(cluster, command.node)
        verb = "Cordon" if self.unschedulable else "Uncordon"
        nothing = None
        if node.unschedulable == self.unschedulable:
            nothing = f"{node.name} is already {'cordoned' if self.unschedulable else 'schedulable'}; nothing to do."
        return Plan(
            verb=self.verb,
            cluster=cluster.name,
            target=node.name,
            title=f"{verb} {node.name}",
            steps=[
                PlannedStep(
                    name=SetSchedulable.name,
                    title=f"{verb} {node.name} ({_schedulable_words(node)})",
                    touches=[f"node/{node.name}"],
                )
            ],
            facts={"node": node.name, "node_exists": True, "unschedulable": node.unschedulable},
            preview=[
                f"{node.name}: {'Ready' if node.ready else 'NotReady'}, kubelet {node.kubelet_version}, "
                f"{_schedulable_words(node)}"
            ],
            risk="low",
            nothing_to_do=nothing,
            locks=[f"node/{node.name}"],
        )

    def steps(self, plan: Plan, command: Command) -> list[Step]:
        return [
            SetSchedulable(plan.steps[0].title, node=plan.target, unschedulable=self.unschedulable)
        ]


class CordonPlaybook(_SchedulingPlaybook):
    verb: ClassVar[str] = "cordon"
    unschedulable: ClassVar[bool] = True


class UncordonPlaybook(_SchedulingPlaybook):
    verb: ClassVar[str] = "uncordon"
    unschedulable: ClassVar[bool] = False
