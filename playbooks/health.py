"""The health gate a node passes before kubegate calls it done: Ready, no pressure, the kubelet
version expected, and its DaemonSet pods Ready. Checks again whenever the API says the Node or a
pod on it changed (a watch), or every few seconds if no news comes, until then or a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import abstractmethod
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from playbooks.base import ClusterHandle, ParamsT, Step, StepContext, StepResult
from playbooks.kube import NodeView
from playbooks.node_watch import node_changes
from playbooks.plan import StepParams
from playbooks.pods import PodView, pod_view

# Without news from the watches (an event missed, a watch that broke) the gate still checks
# this often; with them it checks the moment the kubelet reports Ready, which is on the critical
# path of every node of a rolling upgrade.
POLL_INTERVAL_S = 2.0
HEALTH_TIMEOUT_S = 300.0


def health_problems(
    node: NodeView | None, daemonset_pods: list[PodView], *, kubelet_version: str
) -> list[str]:
    """What keeps the node from passing, in words; [] when it passes. Pure."""
    if node is None:
        return ["the Node is not in the API"]
    problems = []
    if not node.ready:
        problems.append(f"{node.name} is not Ready")
    if node.pressure:
        problems.append(f"{node.name} reports {', '.join(node.pressure)}")
    if node.kubelet_version != kubelet_version:
        problems.append(f"its kubelet reports {node.kubelet_version or 'no version'}")
    waiting = [p.key for p in daemonset_pods if not p.ready and not p.finished]
    if waiting:
        problems.append("DaemonSet pod(s) not Ready: " + ", ".join(sorted(waiting)))
    return problems


async def current_problems(cluster: ClusterHandle, node: str, kubelet_version: str) -> list[str]:
    view = await cluster.kube.get_node(node)
    pods = [pod_view(p) for p in await cluster.kube.pods_on(node)] if view else []
    daemonset = [p for p in pods if p.owner_kind == "DaemonSet" and not p.terminating]
    return health_problems(view, daemonset, kubelet_version=kubelet_version)


async def wait_until_healthy(
    cluster: ClusterHandle, node: str, *, kubelet_version: str, timeout: float
) -> list[str]:
    """Check until the node passes; what still keeps it from passing at the timeout, or []."""
    deadline = time.monotonic() + timeout
    async with node_changes(cluster.kube, node) as changed:
        while True:
            changed.clear()  # before the check: a change during it wakes the next one
            problems = await current_problems(cluster, node, kubelet_version)
            left = deadline - time.monotonic()
            if not problems or left <= 0:
                return problems
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=min(POLL_INTERVAL_S, left))


class Healthy(BaseModel):
    """What the node must show to pass: Ready, no pressure, this kubelet version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: str
    kubelet_version: str
    timeout_seconds: float = HEALTH_TIMEOUT_S


class NodeHealthGate(Step[ParamsT]):
    """Wait until the node passes; each kind names its own parameters model (`expect`)."""

    @property
    @abstractmethod
    def expect(self) -> Healthy: ...

    async def run(self, ctx: StepContext) -> StepResult:
        started, expect = time.monotonic(), self.expect
        problems = await wait_until_healthy(
            ctx.cluster,
            expect.node,
            kubelet_version=expect.kubelet_version,
            timeout=expect.timeout_seconds,
        )
        if problems:
            return StepResult.failed(
                f"{expect.node} did not pass the health gate within "
                f"{expect.timeout_seconds:.0f} s: " + "; ".join(problems)
            )
        return StepResult(
            ok=True,
            summary=f"{expect.node} is Ready with no pressure, kubelet {expect.kubelet_version}, "
            f"DaemonSet pods Ready (after {time.monotonic() - started:.1f} s)",
        )


class HealthGateParams(StepParams):
    step: Literal["health-gate"] = "health-gate"
    expect: Healthy


class HealthGate(NodeHealthGate[HealthGateParams]):
    """An upgraded node's gate before kubegate calls it done."""

    name: ClassVar[str] = "health-gate"
    params_model: ClassVar[type[StepParams]] = HealthGateParams
    # A check: on resume it waits for the node again, whatever the node looked like before.
    recheck_on_resume: ClassVar[bool] = True

    @property
    def expect(self) -> Healthy:
        return self.params.expect
