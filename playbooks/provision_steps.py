"""The steps of provisioning that are its own (host preparation is in host_prep, the join in
join): the packages with the kubelet enabled, the wait for Ready, labels and taints.
"""

from __future__ import annotations

from typing import ClassVar

from commands import TaintCommand
from playbooks.base import Step, StepContext, StepResult
from playbooks.health import HealthGate
from playbooks.packages import InstallPackages
from playbooks.remote import RemoteCommand
from playbooks.taints import EditTaints


class ProvisionPackages(InstallPackages):
    after: ClassVar[tuple[RemoteCommand, ...]] = (
        RemoteCommand.of("systemctl", "enable", "--now", "kubelet"),
    )


class NodeReady(HealthGate):
    name: ClassVar[str] = "node-ready"


class LabelAndTaint(Step):
    name: ClassVar[str] = "labels-taints"

    def __init__(
        self, title: str, *, node: str, labels: dict[str, str], taints: list[TaintCommand]
    ) -> None:
        super().__init__(title)
        self.node = node
        self.labels = labels
        self.taints = taints

    async def run(self, ctx: StepContext) -> StepResult:
        if self.labels:
            await ctx.cluster.kube.add_labels(self.node, self.labels)
        for taint in self.taints:
            result = await EditTaints(taint.summary(), command=taint).run(ctx)
            if not result.ok:
                return result
        done = [f"{key}={value}" for key, value in self.labels.items()] + [
            t.taint for t in self.taints
        ]
        return StepResult(ok=True, summary=f"{self.node} now carries {', '.join(done)}")


def taint_command(node: str, text: str) -> TaintCommand:
    """`key=value:Effect` or `key:Effect`, checked as `/kube taint` checks it."""
    head, _, effect = text.rpartition(":")
    key, _, value = head.partition("=")
    return TaintCommand(node=node, key=key, value=value or None, effect=effect)
