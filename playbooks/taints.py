"""Taint and untaint a node: the taints list is replaced whole, so read, modify, and patch
with the resourceVersion read, re-trying on a 409 (someone else wrote in between).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from commands import TaintCommand, UntaintCommand
from playbooks.base import (
    ClusterHandle,
    Playbook,
    Step,
    StepContext,
    StepOutcome,
    StepResult,
)
from playbooks.cordon import read_node
from playbooks.kube import KubeError, NodeView
from playbooks.plan import Plan, PlannedStep, StepParams

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


class EditTaintsParams(StepParams):
    """One taint change: add (or re-value) `key[=value]:effect`, or remove `key[:effect]`."""

    step: Literal["edit-taints"] = "edit-taints"
    node: str
    remove: bool
    key: str
    value: str | None = None
    # None only when removing: every effect of the key.
    effect: str | None = None

    @classmethod
    def of(cls, command: TaintCommand | UntaintCommand) -> EditTaintsParams:
        if isinstance(command, TaintCommand):
            return cls(
                node=command.node,
                remove=False,
                key=command.key,
                value=command.value,
                effect=command.effect,
            )
        return cls(node=command.node, remove=True, key=command.key, effect=command.effect)

    def change(self, taints: list[Taint]) -> list[Taint]:
        if self.remove:
            return without_taint(taints, key=self.key, effect=self.effect)
        assert self.effect is not None, "a taint to add always has an effect"
        return with_taint(taints, key=self.key, value=self.value, effect=self.effect)


class TaintChange(StepOutcome):
    """The node's taints before the change, and whether this job changed them (for the undo)."""

    before: list[dict[str, Any]]
    changed: bool = False


class EditTaints(Step[EditTaintsParams]):
    """Apply one taint change to the node's current list (re-read on every attempt)."""

    name: ClassVar[str] = "edit-taints"
    params_model: ClassVar[type[StepParams]] = EditTaintsParams

    # LEGACY: provision.py builds it with `command=TaintCommand`; drop once it plans params.
    def __init__(
        self,
        title: str,
        params: EditTaintsParams | None = None,
        *,
        command: TaintCommand | UntaintCommand | None = None,
    ) -> None:
        if params is None:
            assert command is not None
            params = EditTaintsParams.of(command)
        super().__init__(title, params)

    async def run(self, ctx: StepContext) -> StepResult:
        for _ in range(CONFLICT_RETRIES):
            node = await read_node(ctx.cluster, self.params.node)
            before = [dict(t) for t in node.taints]
            after = self.params.change(before)
            if after == before:
                return StepResult.done(
                    "taints already as asked; nothing changed", TaintChange(before=before)
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
            return StepResult.done(
                f"taints of {node.name} now: {shown}", TaintChange(before=before, changed=True)
            )
        return StepResult.failed(
            f"{self.params.node} kept changing; gave up after {CONFLICT_RETRIES} conflicts"
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        change = result.outcome(TaintChange)
        if not change.changed:
            return None
        node = await read_node(ctx.cluster, self.params.node)
        await ctx.cluster.kube.set_taints(
            node.name, change.before, resource_version=node.resource_version
        )
        return f"taints of {node.name} restored"


def decide_taints(
    node: NodeView, command: TaintCommand | UntaintCommand, *, verb: str, cluster: str
) -> Plan:
    """The plan for one taint change on the node as observed (pure)."""
    taints = [dict(t) for t in node.taints]
    params = EditTaintsParams.of(command)
    nothing = None
    if params.change(taints) == taints:
        had = "no such taint" if params.remove else "that taint"
        nothing = f"{node.name} already has {had}; nothing to do."
    current = ", ".join(taint_text(t) for t in taints) or "none"
    return Plan(
        verb=verb,
        cluster=cluster,
        target=node.name,
        title=command.summary(),
        steps=[PlannedStep.of(params, command.summary(), touches=[f"node/{node.name}"])],
        facts={
            "node_exists": True,
            "taints_with_key": _matching(taints, command.key, command.effect),
        },
        preview=[f"Taints of {node.name} now: {current}"],
        nothing_to_do=nothing,
        locks=[f"node/{node.name}"],
    )


class TaintPlaybook(Playbook[TaintCommand]):
    verb: ClassVar[str] = "taint"
    command_type = TaintCommand

    async def plan(self, command: TaintCommand, cluster: ClusterHandle) -> Plan:
        node = await read_node(cluster, command.node)
        return decide_taints(node, command, verb=self.verb, cluster=cluster.name)


class UntaintPlaybook(Playbook[UntaintCommand]):
    verb: ClassVar[str] = "untaint"
    command_type = UntaintCommand

    async def plan(self, command: UntaintCommand, cluster: ClusterHandle) -> Plan:
        node = await read_node(cluster, command.node)
        return decide_taints(node, command, verb=self.verb, cluster=cluster.name)
