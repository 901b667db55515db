"""A node upgrade's steps and its abort on the fake tier (in-memory API and SSH): the kubeadm
procedure in order, and an abort that uncordons only a node whose packages never moved."""

from __future__ import annotations

from typing import Any

from commands import UpgradeNodeCommand
from playbooks import Plan
from playbooks.upgrade_plan import NodeUpgradeSnapshot, decide_node_upgrade
from tests.fakes import FakeKube, FakeShell, Reply, Run, cluster_of, node

KUBEADM_VERSION = ("kubeadm", "version", "-o", "short")
KUBELET_VERSION = ("kubelet", "--version")


def upgrade_plan(kube: FakeKube, to: str = "v1.31.3") -> Plan:
    run_cluster = cluster_of(kube)
    nodes = [kube.node("cp-1"), kube.node("worker-1")]
    seen = NodeUpgradeSnapshot(
        run_cluster.name, run_cluster.inventory, nodes, {"cp-1": kube.version}
    )
    return decide_node_upgrade(UpgradeNodeCommand(node="worker-1", to_version=to), seen)


def cluster(*, worker_cordoned: bool = False) -> FakeKube:
    return FakeKube(
        node("cp-1", roles=("control-plane",), internal_ip="10.0.0.1"),
        node("worker-1", unschedulable=worker_cordoned, internal_ip="10.0.0.11"),
        version="v1.31.3",
    )


def kubelet_reports(version: str) -> Any:
    def change(obj: dict[str, Any]) -> None:
        obj["status"]["nodeInfo"]["kubeletVersion"] = version

    return change


async def test_a_worker_is_drained_then_upgraded_the_kubeadm_way_then_uncordoned() -> None:
    kube, shell = cluster(), FakeShell()
    run = Run(upgrade_plan(kube), cluster_of(kube, shell))
    kube.edit("Node", "worker-1", kubelet_reports("v1.31.3"))  # as the restarted kubelet will
    result = await run.all()
    assert result.ok, result.summary
    assert shell.ran("worker-1") == [
        ("true",),  # confirm-host: all that runs once the host said it is worker-1
        ("apt-mark", "unhold", "kubeadm"),
        ("apt-get", "update"),
        ("apt-get", "install", "-y", "kubeadm=1.31.3-*"),
        ("apt-mark", "hold", "kubeadm"),
        ("kubeadm", "upgrade", "node"),
        ("apt-mark", "unhold", "kubelet", "kubectl"),
        ("apt-get", "update"),
        ("apt-get", "install", "-y", "kubelet=1.31.3-*", "kubectl=1.31.3-*"),
        ("apt-mark", "hold", "kubelet", "kubectl"),
        ("systemctl", "daemon-reload"),
        ("systemctl", "restart", "kubelet"),
    ]
    assert not kube.node("worker-1").unschedulable


async def test_a_node_cordoned_before_the_upgrade_is_left_cordoned_after_it() -> None:
    kube, shell = cluster(worker_cordoned=True), FakeShell()
    run = Run(upgrade_plan(kube), cluster_of(kube, shell))
    kube.edit("Node", "worker-1", kubelet_reports("v1.31.3"))
    assert (await run.all()).ok
    uncordon = next(result for step, result in run.done if step.name == "uncordon")
    assert uncordon.summary == "worker-1 left cordoned: it was cordoned before this job"
    assert kube.node("worker-1").unschedulable


async def test_an_abort_after_kubeadm_moved_leaves_the_node_cordoned_saying_why() -> None:
    kube, shell = cluster(), FakeShell()
    shell.reply(["kubeadm", "upgrade", "node"], Reply(1, stderr="etcd unreachable"))
    shell.reply(KUBEADM_VERSION, Reply(stdout="v1.31.3\n"))
    shell.reply(KUBELET_VERSION, Reply(stdout="Kubernetes v1.31.2\n"))
    run = Run(upgrade_plan(kube), cluster_of(kube, shell))
    failed = await run.all()
    assert failed.summary == "`kubeadm upgrade node` failed on worker-1 (exit 1)"
    [said] = await run.abort()
    assert said.startswith(
        "worker-1 left cordoned: its packages changed (kubeadm at v1.31.3; it was at v1.31.2)"
    )
    assert "/kube upgrade worker-1 --to v1.31.3" in said
    assert kube.node("worker-1").unschedulable


async def test_an_abort_before_any_package_moved_uncordons_the_node_the_job_cordoned() -> None:
    kube, shell = cluster(), FakeShell()
    shell.reply(["apt-get", "install", "-y", "kubeadm=1.31.3-*"], Reply(100, stderr="E: 404"))
    shell.reply(KUBEADM_VERSION, Reply(stdout="v1.31.2\n"))
    shell.reply(KUBELET_VERSION, Reply(stdout="Kubernetes v1.31.2\n"))
    run = Run(upgrade_plan(kube), cluster_of(kube, shell))
    assert not (await run.all()).ok
    assert await run.abort() == ["worker-1 uncordoned again, as it was before"]
    assert not kube.node("worker-1").unschedulable


async def test_an_abort_that_cannot_reach_the_node_leaves_it_cordoned() -> None:
    kube, shell = cluster(), FakeShell()
    shell.reply(["kubeadm", "upgrade", "node"], Reply(1))
    run = Run(upgrade_plan(kube), cluster_of(kube, shell))
    await run.all()
    shell.unreachable.add("worker-1")
    [said] = await run.abort()
    assert "worker-1 left cordoned: kubegate could not check its kubeadm and kubelet" in said
    assert kube.node("worker-1").unschedulable
