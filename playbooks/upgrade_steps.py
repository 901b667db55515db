"""The steps of one node's upgrade that are its own (the drain and package steps live with
drain and packages): `kubeadm upgrade apply|node`, the kubelet restart, uncordon-if-it-was.
"""

from __future__ import annotations

from typing import ClassVar

from playbooks.base import Step, StepContext, StepResult
from playbooks.cordon import SetSchedulable, read_node
from playbooks.remote import NodeRef, Remote, RemoteCommand
from playbooks.versions import Version


class KubeadmUpgrade(Step):
    """`kubeadm upgrade apply vX --yes` on the first control plane, `kubeadm upgrade node`
    elsewhere; both are safe to run again, so on resume only `apply` checks the API server."""

    name: ClassVar[str] = "kubeadm-upgrade"

    def __init__(self, title: str, *, node: str, version: Version, apply: bool) -> None:
        super().__init__(title)
        self.node = node
        self.version = version
        self.apply = apply

    @property
    def command(self) -> RemoteCommand:
        if self.apply:
            return RemoteCommand.of("kubeadm", "upgrade", "apply", str(self.version), "--yes")
        return RemoteCommand.of("kubeadm", "upgrade", "node")

    async def run(self, ctx: StepContext) -> StepResult:
        remote = await Remote.open(ctx, NodeRef(self.node))
        ran = await remote.run_in_order([self.command])
        if isinstance(ran, StepResult):
            return ran
        return StepResult(ok=True, summary=f"`{self.command.label}` done on {self.node}")

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        if not self.apply:
            return None
        if Version.parse(await ctx.cluster.kube.server_version()) != self.version:
            return None
        return StepResult(ok=True, summary=f"the API server was already at {self.version}")


class CordonForUpgrade(SetSchedulable):
    name: ClassVar[str] = "cordon"

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        node = await read_node(ctx.cluster, self.node)
        if not node.unschedulable:
            return None
        # The job holds the node's lock: if it was schedulable when planned, we cordoned it.
        was = bool(ctx.plan.facts.get("was_unschedulable"))
        return StepResult(
            ok=True,
            summary=f"{self.node} was already cordoned before the restart",
            data={"changed": not was, "was_unschedulable": was},
        )


class RestartKubelet(Step):
    name: ClassVar[str] = "restart-kubelet"
    commands = (
        RemoteCommand.of("systemctl", "daemon-reload"),
        RemoteCommand.of("systemctl", "restart", "kubelet"),
    )

    def __init__(self, title: str, *, node: str, version: Version) -> None:
        super().__init__(title)
        self.node = node
        self.version = version

    async def run(self, ctx: StepContext) -> StepResult:
        remote = await Remote.open(ctx, NodeRef(self.node))
        ran = await remote.run_in_order(self.commands)
        if isinstance(ran, StepResult):
            return ran
        return StepResult(ok=True, summary=f"kubelet restarted on {self.node}")

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        node = await read_node(ctx.cluster, self.node)
        if Version.parse(node.kubelet_version) != self.version:
            return None
        return StepResult(ok=True, summary=f"the kubelet already reported {self.version}")


class UncordonIfItWas(Step):
    """Uncordon only a node that was schedulable before this job cordoned it."""

    name: ClassVar[str] = "uncordon"

    def __init__(self, title: str, *, node: str) -> None:
        super().__init__(title)
        self.node = node

    def _left_cordoned(self, ctx: StepContext) -> StepResult | None:
        if ctx.results[CordonForUpgrade.name].data.get("was_unschedulable"):
            return StepResult(
                ok=True, summary=f"{self.node} left cordoned: it was cordoned before this job"
            )
        return None

    async def run(self, ctx: StepContext) -> StepResult:
        skipped = self._left_cordoned(ctx)
        if skipped:
            return skipped
        after = await ctx.cluster.kube.set_unschedulable(self.node, False)
        if after.unschedulable:
            return StepResult(
                ok=False, summary=f"the API accepted the patch but {self.node} is still cordoned"
            )
        return StepResult(ok=True, summary=f"{self.node} uncordoned")

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        skipped = self._left_cordoned(ctx)
        if skipped:
            return skipped
        node = await read_node(ctx.cluster, self.node)
        return (
            None if node.unschedulable else StepResult(ok=True, summary=f"{self.node} uncordoned")
        )
