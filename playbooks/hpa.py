"""Scale an HPA's bounds: both minReplicas and maxReplicas in one patch (autoscaling/v2),
validated (1 ≤ min ≤ max) by the command before any API call.
"""

from __future__ import annotations

from typing import ClassVar

from commands import Command, ScaleHpaCommand
from playbooks.base import ClusterHandle, PlanError, Playbook, Step, StepContext, StepResult
from playbooks.plan import Plan, PlannedStep


class SetHpaBounds(Step):
    name: ClassVar[str] = "set-hpa-bounds"

    def __init__(self, title: str, *, command: ScaleHpaCommand) -> None:
        super().__init__(title)
        self.command = command

    async def run(self, ctx: StepContext) -> StepResult:
        c = self.command
        before = await ctx.cluster.kube.get_hpa(c.namespace, c.name)
        if before is None:
            return StepResult(ok=False, summary=f"HPA {c.target} no longer exists")
        old = (before["spec"].get("minReplicas", 1), before["spec"]["maxReplicas"])
        after = await ctx.cluster.kube.set_hpa_bounds(
            c.namespace, c.name, minimum=c.min_replicas, maximum=c.max_replicas
        )
        new = (after["spec"].get("minReplicas", 1), after["spec"]["maxReplicas"])
        return StepResult(
            ok=True,
            summary=f"HPA {c.target}: min {old[0]} → {new[0]}, max {old[1]} → {new[1]}",
            data={"min": old[0], "max": old[1]},
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        c = self.command
        await ctx.cluster.kube.set_hpa_bounds(
            c.namespace, c.name, minimum=result.data["min"], maximum=result.data["max"]
        )
        return f"HPA {c.target} back to min {result.data['min']}, max {result.data['max']}"


class ScaleHpaPlaybook(Playbook):
    verb: ClassVar[str] = "scale"

    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        assert isinstance(command, ScaleHpaCommand)
        hpa = await cluster.kube.get_hpa(command.namespace, command.name)
        if hpa is None:
            raise PlanError(
                f"There is no HorizontalPodAutoscaler `{command.target}` in cluster {cluster.name}."
            )
        spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
        current = (spec.get("minReplicas", 1), spec.get("maxReplicas"))
        nothing = None
        if current == (command.min_replicas, command.max_replicas):
            nothing = f"HPA {command.target} already has min {current[0]}, max {current[1]}; nothing to do."
        return Plan(
            verb=self.verb,
            cluster=cluster.name,
            target=command.target,
            title=command.summary(),
            steps=[
                PlannedStep(
                    name=SetHpaBounds.name,
                    title=f"Patch minReplicas and maxReplicas of {command.target} in one change",
                    touches=[f"hpa/{command.target}"],
                )
            ],
            facts={"hpa_exists": True, "min": current[0], "max": current[1]},
            preview=[
                f"Now: min {current[0]}, max {current[1]}, {status.get('currentReplicas', '?')} replica(s) running · "
                f"after: min {command.min_replicas}, max {command.max_replicas}"
            ],
            nothing_to_do=nothing,
            locks=[f"hpa/{command.target}"],
        )

    def steps(self, plan: Plan, command: Command) -> list[Step]:
        assert isinstance(command, ScaleHpaCommand)
        return [SetHpaBounds(plan.steps[0].title, command=command)]
