"""etcd before a control plane is touched: healthy, with every member up (`etcdctl endpoint
health --cluster`, which asks each member the member list names), as kubeadm's own upgrade
checks the whole etcd cluster before it rewrites a static pod (cmd/kubeadm/app/phases/upgrade/
staticpods.go). Asked at planning time, so a refusal comes before anything changed, and again
as the first step of each control plane's upgrade."""

from __future__ import annotations

from typing import ClassVar, Literal

from playbooks.base import ClusterHandle, PlanError, Step, StepContext, StepResult
from playbooks.errors import OperationError
from playbooks.etcd_tools import etcd_tools
from playbooks.kube import NodeView
from playbooks.plan import StepParams

HEALTH = ("endpoint", "health", "--cluster", "--dial-timeout=3s", "--command-timeout=5s")


async def etcd_problem(cluster: ClusterHandle, nodes: list[NodeView]) -> str | None:
    """Why etcd is not healthy with every member up, in words; None when it is. Asked on each
    Ready control plane in turn until one has a running etcd to ask (a member down on the
    first is itself the answer, but another member words it best)."""
    ssh = await cluster.ssh()
    problems = []
    for node in cluster.inventory.control_plane_order(nodes):
        target = cluster.inventory.target(node)
        if target is None or not node.ready:
            problems.append(f"{node.name} is {'NotReady' if not node.ready else 'unreachable'}")
            continue
        try:
            tools = await etcd_tools(ssh, target, cluster.inventory.etcd)
            asked = await ssh.run(target, tools.etcdctl(*HEALTH))
        except OperationError as error:
            problems.append(error.message)
            continue
        if asked.ok:
            return None
        unhealthy = [line for line in asked.tail(20).splitlines() if "unhealthy" in line]
        return "; ".join(unhealthy) or asked.tail(3) or f"exit {asked.exit_status}"
    return "; ".join(problems) or "no control plane to ask"


async def refuse_unhealthy_etcd(cluster: ClusterHandle, nodes: list[NodeView], what: str) -> None:
    problem = await etcd_problem(cluster, nodes)
    if problem is not None:
        raise PlanError(
            f"Refusing to upgrade {what}; nothing was changed. etcd must be healthy with every "
            f"member up before a control plane is touched, and it is not: {problem}. Bring the "
            "member back (`etcdctl endpoint health --cluster` answers for all), then ask again."
        )


class EtcdHealthyParams(StepParams):
    step: Literal["etcd-healthy"] = "etcd-healthy"
    node: str  # the control plane about to be touched


class EtcdHealthy(Step[EtcdHealthyParams]):
    """Checked again when the job runs: a member may have gone down since approval."""

    name: ClassVar[str] = "etcd-healthy"
    params_model: ClassVar[type[StepParams]] = EtcdHealthyParams

    async def run(self, ctx: StepContext) -> StepResult:
        problem = await etcd_problem(ctx.cluster, await ctx.cluster.kube.list_nodes())
        if problem is not None:
            return StepResult.failed(
                f"etcd is not healthy with every member up; {self.params.node} was not "
                f"touched: {problem}"
            )
        return StepResult(ok=True, summary="etcd healthy, every member up")
