"""The health gate a node passes before kubegate calls it done: Ready, no pressure, the kubelet
version expected, and its DaemonSet pods Ready. Polls the API until then or a timeout.
"""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from playbooks.base import ClusterHandle, Step, StepContext, StepResult
from playbooks.kube import NodeView
from playbooks.pods import PodView, pod_view

POLL_INTERVAL_S = 0.5
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
    """Poll until the node passes; what still keeps it from passing at the timeout, or []."""
    deadline = time.monotonic() + timeout
    while True:
        problems = await current_problems(cluster, node, kubelet_version)
        if not problems or time.monotonic() >= deadline:
            return problems
        await asyncio.sleep(POLL_INTERVAL_S)


class HealthGate(Step):
    name: ClassVar[str] = "health-gate"

    def __init__(
        self, title: str, *, node: str, kubelet_version: str, timeout: float = HEALTH_TIMEOUT_S
    ) -> None:
        super().__init__(title)
        self.node = node
        self.kubelet_version = kubelet_version
        self.timeout = timeout

    async def run(self, ctx: StepContext) -> StepResult:
        started = time.monotonic()
        problems = await wait_until_healthy(
            ctx.cluster, self.node, kubelet_version=self.kubelet_version, timeout=self.timeout
        )
        if problems:
            return StepResult(
                ok=False,
                summary=f"{self.node} did not pass the health gate within {self.timeout:.0f} s: "
                + "; ".join(problems),
            )
        return StepResult(
            ok=True,
            summary=f"{self.node} is Ready with no pressure, kubelet {self.kubelet_version}, "
            f"DaemonSet pods Ready (after {time.monotonic() - started:.1f} s)",
        )
