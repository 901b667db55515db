"""The steps of provisioning that are its own (host preparation is in host_prep, the package
source in provision_sources, the join in join): the packages with the kubelet enabled, and the
wait for Ready with the taints it registered with.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from commands import NewNodeTaint
from playbooks.base import StepContext, StepResult
from playbooks.health import Healthy, NodeHealthGate
from playbooks.packages import InstallPackages, PackagesAt
from playbooks.plan import StepParams
from playbooks.remote import RemoteCommand


class ProvisionPackagesParams(StepParams):
    step: Literal["packages"] = "packages"
    at: PackagesAt


class ProvisionPackages(InstallPackages[ProvisionPackagesParams]):
    """kubeadm, kubelet and kubectl on the new host, held, and the kubelet enabled."""

    name: ClassVar[str] = "packages"
    params_model: ClassVar[type[StepParams]] = ProvisionPackagesParams
    after: ClassVar[tuple[RemoteCommand, ...]] = (
        RemoteCommand.of("systemctl", "enable", "--now", "kubelet"),
    )

    @property
    def at(self) -> PackagesAt:
        return self.params.at


class NodeReadyParams(StepParams):
    step: Literal["node-ready"] = "node-ready"
    expect: Healthy
    labels: dict[str, str]
    taints: list[NewNodeTaint]


class NodeReady(NodeHealthGate[NodeReadyParams]):
    """The joined node Ready at the cluster's version, its DaemonSet pods Ready, carrying the
    taints it was asked to register with."""

    name: ClassVar[str] = "node-ready"
    params_model: ClassVar[type[StepParams]] = NodeReadyParams

    @property
    def expect(self) -> Healthy:
        return self.params.expect

    async def run(self, ctx: StepContext) -> StepResult:
        ready = await super().run(ctx)
        if not ready.ok:
            return ready
        missing = await self.missing_labels_and_taints(ctx)
        if missing:
            return StepResult(
                ok=False,
                summary=f"{self.expect.node} is Ready but lacks {', '.join(missing)}: "
                "its kubelet did not register them",
            )
        return ready

    async def missing_labels_and_taints(self, ctx: StepContext) -> list[str]:
        """The taints it should have registered with and lacks (labels are not in the node
        view kubegate reads; the testbed and kubectl check those)."""
        node = await ctx.cluster.kube.get_node(self.expect.node)
        if node is None:
            return [f"its Node object ({self.expect.node} is gone)"]
        have = {(t.get("key"), t.get("value") or None, t.get("effect")) for t in node.taints}
        return [
            f"taint {taint.taint}"
            for taint in self.params.taints
            if (taint.key, taint.value, taint.effect) not in have
        ]
