"""Taint and untaint a node: the taints list is replaced whole, so read, modify, and patch
with the resourceVersion read, re-trying on a 409 (someone else wrote in between).
"""

from __future__ import annotations

from typing import Any, ClassVar

from commands import Command, TaintCommand, UntaintCommand
from playbooks.base import ClusterHandle, Playbook, Step, StepContext, StepResult
from playbooks.cordon import read_node
from playbooks.kube import KubeError
from playbooks.plan import Plan, PlannedStep

Taint = dict[str, Any]
CONFLICT_RETRIES = 5


def taint_text(taint: Taint) -> str:
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint['key']}{value}:{taint['effect']}"


def with_taint(taints: list[Taint], *, key: str, value: str | None, effect: str) -> list[Taint]:
    """The list with this key+effect set to the value (replacing the old value if any)."""
    kept = [t for t in taints if not (t.get("key") == key and t.get("effect") == effect)]
    new: Taint = {"key": key, "effect": effect}
    if value is not None:
        new["value"] = value
    return [*kept, new]


def without_taint(taints: list[Taint], *, key: str, effect: str | None) -> list[Taint]:
    return [t for t in taints if not (t.get("key") == key and effect in (None, t.get("effect")))]


def _matching(taints: list[Taint], key: str, effect: str | None) -> list[str]:
    return sorted(
        taint_text(t) for t in taints if t.get("key") == key and effect in (None, t.get("effect"))
    )


class EditTaints(Step):
    """Apply one taint change to the node's current list (re-read on every attempt)."""

    name: ClassVar[str] = "edit-taints"

    def __init__(self, title: str, *, command: TaintCommand | UntaintCommand) -> None:
        super().__init__(title)
        self.command = command

    def change(self, taints: list[Taint]) -> list[Taint]:
        c = self.command
        if isinstance(c, TaintCommand):
            return with_taint(taints, key=c.key, value=c.value, effect=c.effect)
        return without_taint(taints, key=c.key, effect=c.effect)

    async def run(self, ctx: StepContext) -> StepResult:
        for _ in range(CONFLICT_RETRIES):
            node = await read_node(ctx.cluster, self.command.node)
            before = [dict(t) for t in node.taints]
            after = self.change(before)
            if after == before:
                return StepResult(
                    ok=True,
                    summary="taints already as asked; nothing changed",
                    data={"before": before},
                )
            try:
                patched = await ctx.cluster.kube.set_taints(
                    node.name, after, resource_version=node.resource_version
                )
            except KubeError as error:
                if error.status == 409:
                    continue  # the node changed under us: read again
                raise
            shown = ", ".join(taint_text(t) for t in patched.taints) or "none"
            return StepResult(
                ok=True,
                summary=f"taints of {node.name} now: {shown}",
                data={"before": before, "changed": True},
            )
        return StepResult(
            ok=False,
            summary=f"{self.command.node} kept changing; gave up after {CONFLICT_RETRIES} conflicts",
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        if not result.data.get("changed"):
            return None
        node = await read_node(ctx.cluster, self.command.node)
        await ctx.cluster.kube.set_taints(
            node.name, result.data["before"], resource_version=node.resource_version
        )
        return f"taints of {node.name} restored"


class _TaintPlaybook(Playbook):
    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        assert isinstance(command, TaintCommand | UntaintCommand)
        node = await read_node(cluster, command.node)
        taints = [dict(t) for t in node.taints]
        effect = command.effect
        step = EditTaints(command.summary(), command=command)
        nothing = None
        if step.change(taints) == taints:
            nothing = f"{node.name} already has {'that taint' if isinstance(command, TaintCommand) else 'no such taint'}; nothing to do."
        current = ", ".join(taint_text(t) for t in taints) or "none"
        return Plan(
            verb=self.verb,
            cluster=cluster.name,
            target=node.name,
            title=command.summary(),
            steps=[
                PlannedStep(
                    name=EditTaints.name, title=command.summary(), touches=[f"node/{node.name}"]
                )
            ],
            facts={"node_exists": True, "taints_with_key": _matching(taints, command.key, effect)},
            preview=[f"Taints of {node.name} now: {current}"],
            nothing_to_do=nothing,
            locks=[f"node/{node.name}"],
        )

    def steps(self, plan: Plan, command: Command) -> list[Step]:
        assert isinstance(command, TaintCommand | UntaintCommand)
        return [EditTaints(plan.steps[0].title, command=command)]


class TaintPlaybook(_TaintPlaybook):
    verb: ClassVar[str] = "taint"


class UntaintPlaybook(_TaintPlaybook):
    verb: ClassVar[str] = "untaint"
