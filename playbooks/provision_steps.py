"""The steps of provisioning that are its own (host preparation is in host_prep, the join in
join): the packages with the kubelet enabled, the wait for Ready, labels and taints.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from commands import TaintCommand
from playbooks.base import Step, StepContext, StepResult
from playbooks.health import Healthy, NodeHealthGate
from playbooks.packages import InstallPackages, PackagesAt
from playbooks.plan import StepParams
from playbooks.remote import RemoteCommand
from playbooks.taints import EditTaints, EditTaintsParams


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


class NodeReady(NodeHealthGate[NodeReadyParams]):
    """The joined node Ready at the cluster's version, its DaemonSet pods Ready."""

    name: ClassVar[str] = "node-ready"
    params_model: ClassVar[type[StepParams]] = NodeReadyParams

    @property
    def expect(self) -> Healthy:
        return self.params.expect


class LabelAndTaintParams(StepParams):
    step: Literal["labels-taints"] = "labels-taints"
    node: str
    labels: dict[str, str]
    # As planned and approved, whatever the config says by now.
    taints: list[EditTaintsParams]


def taint_words(taint: EditTaintsParams) -> str:
    value = f"={taint.value}" if taint.value else ""
    return f"{taint.key}{value}:{taint.effect}"


class LabelAndTaint(Step[LabelAndTaintParams]):
    name: ClassVar[str] = "labels-taints"
    params_model: ClassVar[type[StepParams]] = LabelAndTaintParams

    async def run(self, ctx: StepContext) -> StepResult:
        wanted = self.params
        if wanted.labels:
            await ctx.cluster.kube.add_labels(wanted.node, wanted.labels)
        for taint in wanted.taints:
            result = await EditTaints(f"Taint {wanted.node} {taint_words(taint)}", taint).run(ctx)
            if not result.ok:
                return result
        done = [f"{key}={value}" for key, value in wanted.labels.items()]
        done += [taint_words(taint) for taint in wanted.taints]
        return StepResult(ok=True, summary=f"{wanted.node} now carries {', '.join(done)}")


def taint_command(node: str, text: str) -> TaintCommand:
    """`key=value:Effect` or `key:Effect`, checked as `/kube taint` checks it."""
    head, _, effect = text.rpartition(":")
    key, _, value = head.partition("=")
    return TaintCommand(node=node, key=key, value=value or None, effect=effect)
