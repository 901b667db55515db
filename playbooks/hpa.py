"""Scale an HPA's bounds: both minReplicas and maxReplicas in one patch (autoscaling/v2),
validated (1 ≤ min ≤ max) by the command before any API call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from commands import ScaleHpaCommand
from playbooks.base import (
    ClusterHandle,
    PlanError,
    Playbook,
    Step,
    StepContext,
    StepOutcome,
    StepResult,
)
from playbooks.plan import Plan, PlannedStep, StepParams


class SetHpaBoundsParams(StepParams):
    step: Literal["set-hpa-bounds"] = "set-hpa-bounds"
    namespace: str
    name: str
    min_replicas: int
    max_replicas: int

    @property
    def target(self) -> str:
        return f"{self.namespace}/{self.name}"


class HpaBounds(StepOutcome):
    """The bounds before the patch, which an abort puts back."""

    min: int
    max: int


class SetHpaBounds(Step[SetHpaBoundsParams]):
    name: ClassVar[str] = "set-hpa-bounds"
    params_model: ClassVar[type[StepParams]] = SetHpaBoundsParams

    async def run(self, ctx: StepContext) -> StepResult:
        wanted = self.params
        before = await ctx.cluster.kube.get_hpa(wanted.namespace, wanted.name)
        if before is None:
            return StepResult.failed(f"HPA {wanted.target} no longer exists")
        old = (before["spec"].get("minReplicas", 1), before["spec"]["maxReplicas"])
        after = await ctx.cluster.kube.set_hpa_bounds(
            wanted.namespace, wanted.name, minimum=wanted.min_replicas, maximum=wanted.max_replicas
        )
        new = (after["spec"].get("minReplicas", 1), after["spec"]["maxReplicas"])
        return StepResult.done(
            f"HPA {wanted.target}: min {old[0]} → {new[0]}, max {old[1]} → {new[1]}",
            HpaBounds(min=old[0], max=old[1]),
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        wanted, before = self.params, result.outcome(HpaBounds)
        await ctx.cluster.kube.set_hpa_bounds(
            wanted.namespace, wanted.name, minimum=before.min, maximum=before.max
        )
        return f"HPA {wanted.target} back to min {before.min}, max {before.max}"


@dataclass(frozen=True)
class HpaView:
    """What scaling an HPA is decided from: its bounds and how many replicas run now."""

    min_replicas: int
    max_replicas: int | None
    current_replicas: int | None

    @classmethod
    def of(cls, hpa: dict[str, Any]) -> HpaView:
        spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
        return cls(
            min_replicas=spec.get("minReplicas", 1),  # the API's default when unset
            max_replicas=spec.get("maxReplicas"),
            current_replicas=status.get("currentReplicas"),
        )


async def observe_hpa(cluster: ClusterHandle, command: ScaleHpaCommand) -> HpaView | None:
    hpa = await cluster.kube.get_hpa(command.namespace, command.name)
    return HpaView.of(hpa) if hpa is not None else None


def decide_hpa_bounds(seen: HpaView | None, command: ScaleHpaCommand, *, cluster: str) -> Plan:
    """The plan for new bounds on the HPA as observed (None: it does not exist) (pure)."""
    if seen is None:
        raise PlanError(
            f"There is no HorizontalPodAutoscaler `{command.target}` in cluster {cluster}."
        )
    current = (seen.min_replicas, seen.max_replicas)
    nothing = None
    if current == (command.min_replicas, command.max_replicas):
        nothing = (
            f"HPA {command.target} already has min {current[0]}, max {current[1]}; nothing to do."
        )
    running = "?" if seen.current_replicas is None else seen.current_replicas
    params = SetHpaBoundsParams(
        namespace=command.namespace,
        name=command.name,
        min_replicas=command.min_replicas,
        max_replicas=command.max_replicas,
    )
    return Plan(
        verb="scale",
        cluster=cluster,
        target=command.target,
        title=command.summary(),
        steps=[
            PlannedStep.of(
                params,
                f"Patch minReplicas and maxReplicas of {command.target} in one change",
                touches=[f"hpa/{command.target}"],
            )
        ],
        facts={"hpa_exists": True, "min": current[0], "max": current[1]},
        preview=[
            f"Now: min {current[0]}, max {current[1]}, {running} replica(s) running · "
            f"after: min {command.min_replicas}, max {command.max_replicas}"
        ],
        nothing_to_do=nothing,
        locks=[f"hpa/{command.target}"],
    )


class ScaleHpaPlaybook(Playbook[ScaleHpaCommand]):
    verb: ClassVar[str] = "scale"
    command_type = ScaleHpaCommand

    async def plan(self, command: ScaleHpaCommand, cluster: ClusterHandle) -> Plan:
        seen = await observe_hpa(cluster, command)
        return decide_hpa_bounds(seen, command, cluster=cluster.name)
