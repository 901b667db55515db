"""The rolling upgrade of workers on the fake tier: never more nodes down than allowed, every
node back in service at the end, and no new node started after a failure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from playbooks.base import StepContext
from playbooks.plan import Plan
from playbooks.rolling import Wave
from playbooks.ssh import CommandResult, OutputSink, SshTarget
from playbooks.upgrade_cluster import UpgradeWorkers
from playbooks.upgrade_cluster_plan import UpgradeWorkersParams
from tests.fakes import FakeKube, FakeShell, Reply, cluster_of, node

WORKERS = ["worker-1", "worker-2", "worker-3"]


@dataclass
class Fleet(FakeShell):
    """Nodes whose restarted kubelet reports the version just installed, as a real one does."""

    kube: FakeKube = field(default_factory=FakeKube)
    most_cordoned: int = 0

    async def answer(
        self,
        target: SshTarget,
        argv: Sequence[str],
        *,
        running: str | None,
        on_output: OutputSink | None,
    ) -> CommandResult:
        cordoned = sum(n.unschedulable for n in await self.kube.list_nodes())
        self.most_cordoned = max(self.most_cordoned, cordoned)
        result = await super().answer(target, argv, running=running, on_output=on_output)
        if tuple(argv) == ("systemctl", "restart", "kubelet") and result.ok:

            def restarted(obj: dict[str, Any]) -> None:
                obj["status"]["nodeInfo"]["kubeletVersion"] = "v1.31.3"

            self.kube.edit("Node", target.node, restarted)
        return result


def fleet() -> Fleet:
    kube = FakeKube(
        node("cp-1", roles=("control-plane",), kubelet="v1.31.3", internal_ip="10.0.0.1"),
        *(node(name, internal_ip=f"10.0.0.1{i}") for i, name in enumerate(WORKERS)),
        version="v1.31.3",
    )
    return Fleet(kube=kube)


async def roll_workers(shell: Fleet, max_unavailable: int) -> tuple[bool, Wave, str]:
    handle = cluster_of(shell.kube, shell)
    plan = Plan(verb="upgrade", cluster="test", target="cluster", title="", steps=[])
    ctx = StepContext(cluster=handle, plan=plan, job_id=1, results={}, say=_quiet)
    params = UpgradeWorkersParams(nodes=WORKERS, version="v1.31.3", max_unavailable=max_unavailable)
    result = await UpgradeWorkers("Upgrade workers", params).run(ctx)
    return result.ok, result.outcome(Wave), result.summary


async def _quiet(text: str) -> None:
    return None


async def test_every_worker_is_upgraded_with_at_most_two_down_and_all_back_in_service() -> None:
    shell = fleet()
    ok, wave, summary = await roll_workers(shell, max_unavailable=2)
    assert ok, summary
    assert sorted(wave.done) == WORKERS
    assert 1 < shell.most_cordoned <= 2
    assert not any(n.unschedulable for n in await shell.kube.list_nodes())
    assert all(n.kubelet_version == "v1.31.3" for n in await shell.kube.list_nodes())


async def test_a_failed_worker_stops_the_wave_and_no_other_worker_is_started() -> None:
    shell = fleet()
    shell.reply(["kubeadm", "upgrade", "node"], Reply(1, stderr="boom"), node="worker-1")
    ok, wave, summary = await roll_workers(shell, max_unavailable=1)
    assert not ok and "worker-1: FAILED" in summary and list(wave.failed) == ["worker-1"]
    assert "worker-2: not started" in summary and "worker-3: not started" in summary
    assert shell.ran("worker-2") == [] and shell.ran("worker-3") == []
    assert shell.kube.node("worker-1").unschedulable  # left as it is, drained
