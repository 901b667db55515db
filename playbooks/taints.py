"""Taint and untaint a node: the taints list is replaced whole, so read, modify, and patch
with the resourceVersion read, re-trying on a 409 (someone else wrote in between).
"""

from __future__ import annotations

from collections.abc import Callable
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
from playbooks.errors import OperationError
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

    def _same_slot(self, taint: Taint) -> bool:
        """The taint is one this change is about: its key, and its effect when one is given."""
        return taint.get("key") == self.key and self.effect in (None, taint.get("effect"))

    def change(self, taints: list[Taint]) -> list[Taint]:
        if self.remove:
            return without_taint(taints, key=self.key, effect=self.effect)
        assert self.effect is not None, "a taint to add always has an effect"
        return with_taint(taints, key=self.key, value=self.value, effect=self.effect)

    def undo(self, taints: list[Taint], *, before: list[Taint]) -> list[Taint]:
        """This change taken back from the node's current taints, from the list it was applied
        to; what someone else changed since is left alone."""
        then = [t for t in before if self._same_slot(t)]
        if self.remove:
            back = [t for t in then if not any(_same_key_effect(t, now) for now in taints)]
            return [*taints, *back]
        ours = self.change([])[0]
        if not any(t == ours for t in taints):
            return taints  # our taint is gone or re-valued by someone else: not ours to undo
        return [*(t for t in taints if not self._same_slot(t)), *then]


def _same_key_effect(one: Taint, other: Taint) -> bool:
    return one.get("key") == other.get("key") and one.get("effect") == other.get("effect")


class TaintChange(StepOutcome):
    """The node's taints before the change, and whether this job changed them (for the undo)."""

    before: list[dict[str, Any]]
    changed: bool = False


async def write_taints(
    ctx: StepContext, node_name: str, change: Callable[[list[Taint]], list[Taint]]
) -> tuple[list[Taint], NodeView] | None:
    """Apply `change` to the node's taints as read, with the resourceVersion read; on a 409
    (someone wrote in between) read again and re-apply. The taints before and the node after
    (unchanged when there was nothing to do); None when it kept conflicting."""
    for _ in range(CONFLICT_RETRIES):
        node = await read_node(ctx.cluster, node_name)
        before = [dict(t) for t in node.taints]
        after = change(before)
        if after == before:
            return before, node
        try:
            patched = await ctx.cluster.kube.set_taints(
                node.name, after, resource_version=node.resource_version
            )
        except KubeError as error:
            if error.status == 409:
                continue  # the node changed under us: read again
            raise
        return before, patched
    return None


class EditTaints(Step[EditTaintsParams]):
    """Apply one taint change to the node's current list (re-read on every attempt)."""

    name: ClassVar[str] = "edit-taints"
    params_model: ClassVar[type[StepParams]] = EditTaintsParams

    async def run(self, ctx: StepContext) -> StepResult:
        written = await write_taints(ctx, self.params.node, self.params.change)
        if written is None:
            return StepResult.failed(
                f"{self.params.node} kept changing; gave up after {CONFLICT_RETRIES} conflicts"
            )
        before, node = written
        if self.params.change(before) == before:
            return StepResult.done(
                "taints already as asked; nothing changed", TaintChange(before=before)
            )
        shown = ", ".join(taint_text(t) for t in node.taints) or "none"
        return StepResult.done(
            f"taints of {node.name} now: {shown}", TaintChange(before=before, changed=True)
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        change = result.outcome(TaintChange)
        if not change.changed:
            return None
        node = self.params.node
        written = await write_taints(
            ctx, node, lambda taints: self.params.undo(taints, before=change.before)
        )
        if written is None:
            raise OperationError(
                f"{node} kept changing; gave up after {CONFLICT_RETRIES} conflicts"
            )
        taints, _ = written
        if self.params.undo(taints, before=change.before) == taints:
            return f"taints of {node} left as they are: someone else changed them since"
        return f"taints of {node} restored"


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
