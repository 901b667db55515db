"""Steps driven as the engine drives them, without store or chat: built by name from the plan,
run in order until the first failure, results kept by step name, and undone newest first."""

from __future__ import annotations

from dataclasses import dataclass, field

from playbooks import ClusterHandle, Plan, Step, StepContext, StepResult, build_step
from playbooks.base import RemoteShell
from playbooks.inventory import Inventory
from playbooks.kube import Kubernetes


def cluster_of(kube: Kubernetes, shell: RemoteShell | None = None) -> ClusterHandle:
    async def open_shell() -> RemoteShell:
        assert shell is not None, "this test gave the cluster no SSH"
        return shell

    return ClusterHandle(name="test", kube=kube, inventory=Inventory(), ssh_factory=open_shell)


@dataclass
class Run:
    plan: Plan
    cluster: ClusterHandle
    said: list[str] = field(default_factory=list)
    done: list[tuple[Step, StepResult]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.steps = [build_step(planned) for planned in self.plan.steps]
        self.ctx = StepContext(
            cluster=self.cluster, plan=self.plan, job_id=1, results={}, say=self._say
        )

    async def _say(self, text: str) -> None:
        self.said.append(text)

    async def all(self) -> StepResult:
        """Every step in order; the first failed result, or the last one."""
        result = StepResult(ok=True, summary="no steps")
        for step in self.steps[len(self.done) :]:
            result = await step.run(self.ctx)
            self.ctx.results[step.name] = result
            if not result.ok:
                return result
            self.done.append((step, result))
        return result

    async def abort(self) -> list[str]:
        """The compensation of every finished step, newest first: what each said it undid."""
        undone = []
        for step, result in reversed(self.done):
            said = await step.compensate(self.ctx, result)
            if said:
                undone.append(said)
        return undone
