"""The steps of one node's upgrade that are its own (the drain and package steps live with
drain and packages): the cordon that remembers, `kubeadm upgrade apply|node`, the kubelet
restart, uncordon-if-it-was.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from playbooks.base import Step, StepContext, StepResult
from playbooks.cordon import SchedulingChange, SetSchedulable, SetSchedulableParams, read_node
from playbooks.errors import OperationError
from playbooks.packages import UpgradeKubeadm, UpgradeKubelet, reported_version
from playbooks.plan import StepParams
from playbooks.remote import NodeRef, Remote, RemoteCommand, running_file, wait_for_leftover
from playbooks.upgrade_api_servers import own_api_server_version, wait_for_api_server
from playbooks.versions import Version


class CordonForUpgradeParams(StepParams):
    step: Literal["cordon"] = "cordon"
    node: str
    # Whether the node was cordoned before this job began (as planned, or as a rolling
    # upgrade found it before it touched the node): then this job leaves it cordoned.
    was_unschedulable: bool
    # The kubelet's version before the upgrade: an abort leaves the node cordoned once its
    # kubeadm or kubelet package has moved off it.
    from_version: str
    to_version: str


class CordonForUpgrade(Step[CordonForUpgradeParams]):
    """Cordon, remembering whether the node was schedulable before this job."""

    name: ClassVar[str] = "cordon"
    params_model: ClassVar[type[StepParams]] = CordonForUpgradeParams

    @property
    def cordon(self) -> SetSchedulable:
        wanted = SetSchedulableParams(node=self.params.node, unschedulable=True)
        return SetSchedulable(self.title, wanted)

    async def run(self, ctx: StepContext) -> StepResult:
        return await self.cordon.run(ctx)

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        node = await read_node(ctx.cluster, self.params.node)
        if not node.unschedulable:
            return None
        # The job holds the node's lock: if it was schedulable before, we cordoned it.
        was = self.params.was_unschedulable
        return StepResult.done(
            f"{node.name} was already cordoned before the restart",
            SchedulingChange(changed=not was, was_unschedulable=was),
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        if not result.outcome(SchedulingChange).changed:
            return None
        why = await self._packages_moved(ctx)
        if why is not None:
            node, to = self.params.node, self.params.to_version
            return (
                f"{node} left cordoned: {why}. Finish the upgrade (`/kube upgrade {node} "
                f"--to {to}`), or check the node before uncordoning it"
            )
        return await self.cordon.compensate(ctx, result)

    async def _packages_moved(self, ctx: StepContext) -> str | None:
        """Why the node must not go back into service half-upgraded; None when its kubeadm and
        kubelet still report the version they had before this job."""
        try:
            remote = await Remote.open(ctx, NodeRef(name=self.params.node))
            kubeadm = reported_version(await remote.answer(UpgradeKubeadm.probe))
            kubelet = reported_version(await remote.answer(UpgradeKubelet.probe))
        except OperationError as error:
            return f"kubegate could not check its kubeadm and kubelet ({error.message})"
        before = Version.parse(self.params.from_version)
        moved = [
            f"{package} {'at ' + str(found) if found else 'not answering'}"
            for package, found in (("kubeadm", kubeadm), ("kubelet", kubelet))
            if found != before
        ]
        if not moved:
            return None
        return f"its packages changed ({', '.join(moved)}; it was at {before})"


class KubeadmUpgradeParams(StepParams):
    step: Literal["kubeadm-upgrade"] = "kubeadm-upgrade"
    node: str
    version: str
    # `kubeadm upgrade apply` on the first control plane; `kubeadm upgrade node` elsewhere.
    apply: bool
    # A control plane's kubeadm restarts its own API server at the version: wait for it.
    control_plane: bool = False


class KubeadmUpgrade(Step[KubeadmUpgradeParams]):
    """`kubeadm upgrade apply vX --yes` on the first control plane, `kubeadm upgrade node`
    elsewhere; both are safe to run again, so on resume only `apply` checks the API server."""

    name: ClassVar[str] = "kubeadm-upgrade"
    params_model: ClassVar[type[StepParams]] = KubeadmUpgradeParams

    @property
    def command(self) -> RemoteCommand:
        if self.params.apply:
            return RemoteCommand.of("kubeadm", "upgrade", "apply", self.params.version, "--yes")
        return RemoteCommand.of("kubeadm", "upgrade", "node")

    async def run(self, ctx: StepContext) -> StepResult:
        node = self.params.node
        remote = await Remote.open(ctx, NodeRef(name=node))
        ran = await remote.run_in_order([self.command], running=running_file(ctx.job_id, self.name))
        if isinstance(ran, StepResult):
            return ran
        if not self.params.control_plane:
            return StepResult(ok=True, summary=f"`{self.command.label}` done on {node}")
        # Nothing else may touch a control plane until this one's API server serves again.
        timeout = ctx.cluster.inventory.static_pod_ready_timeout.total_seconds()
        last = await wait_for_api_server(
            ctx.cluster, node, self.params.version, timeout=timeout, say=ctx.progress
        )
        if last is not None:
            return StepResult.failed(
                f"`{self.command.label}` finished, but {node}'s API server reports {last} "
                f"{timeout:.0f} s later, not {self.params.version}: check its kube-apiserver "
                "pod (`crictl ps`, `journalctl -u kubelet`) before going on"
            )
        return StepResult(
            ok=True,
            summary=f"`{self.command.label}` done on {node}; its API server serves "
            f"{self.params.version}",
        )

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        await wait_for_leftover(ctx, NodeRef(name=self.params.node), self.name)

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        if not self.params.control_plane:
            return None  # `kubeadm upgrade node` on a worker is safe to run again
        found = await own_api_server_version(ctx.cluster, self.params.node)
        if found != self.params.version:
            return None
        return StepResult(
            ok=True, summary=f"{self.params.node}'s API server was already at {found}"
        )


class RestartKubeletParams(StepParams):
    step: Literal["restart-kubelet"] = "restart-kubelet"
    node: str
    version: str


class RestartKubelet(Step[RestartKubeletParams]):
    name: ClassVar[str] = "restart-kubelet"
    params_model: ClassVar[type[StepParams]] = RestartKubeletParams
    commands = (
        RemoteCommand.of("systemctl", "daemon-reload"),
        RemoteCommand.of("systemctl", "restart", "kubelet"),
    )

    async def run(self, ctx: StepContext) -> StepResult:
        remote = await Remote.open(ctx, NodeRef(name=self.params.node))
        ran = await remote.run_in_order(self.commands, running=running_file(ctx.job_id, self.name))
        if isinstance(ran, StepResult):
            return ran
        return StepResult(ok=True, summary=f"kubelet restarted on {self.params.node}")

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        await wait_for_leftover(ctx, NodeRef(name=self.params.node), self.name)

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        # The restart's confirmation: the kubelet reports the new version, so the new binary
        # runs. Whether the node is fit to go back into service is the health gate's to say,
        # and that gate runs again on every resume.
        node = await read_node(ctx.cluster, self.params.node)
        wanted = Version.parse(self.params.version)
        if Version.parse(node.kubelet_version) != wanted:
            return None
        return StepResult(ok=True, summary=f"the kubelet already reported {wanted}")


class UncordonIfItWasParams(StepParams):
    step: Literal["uncordon"] = "uncordon"
    node: str


class UncordonIfItWas(Step[UncordonIfItWasParams]):
    """Uncordon only a node that was schedulable before this job cordoned it."""

    name: ClassVar[str] = "uncordon"
    params_model: ClassVar[type[StepParams]] = UncordonIfItWasParams
    # A resume uncordons again (a no-op on a schedulable node) rather than trust a node state
    # read before the restart.
    recheck_on_resume: ClassVar[bool] = True

    def _left_cordoned(self, ctx: StepContext) -> StepResult | None:
        if ctx.outcome(CordonForUpgrade.name, SchedulingChange).was_unschedulable:
            return StepResult(
                ok=True,
                summary=f"{self.params.node} left cordoned: it was cordoned before this job",
            )
        return None

    async def run(self, ctx: StepContext) -> StepResult:
        node = self.params.node
        skipped = self._left_cordoned(ctx)
        if skipped:
            return skipped
        after = await ctx.cluster.kube.set_unschedulable(node, False)
        if after.unschedulable:
            return StepResult.failed(f"the API accepted the patch but {node} is still cordoned")
        return StepResult(ok=True, summary=f"{node} uncordoned")

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        skipped = self._left_cordoned(ctx)
        if skipped:
            return skipped
        node = await read_node(ctx.cluster, self.params.node)
        if node.unschedulable:
            return None
        return StepResult(ok=True, summary=f"{node.name} uncordoned")
