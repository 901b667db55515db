"""Resume on the fake tier: a rolling upgrade resumed on a node whose kubelet already reports
the target still runs its checks and uncordons it; a step resumed while its command still runs
on the node waits for it and says so in the thread."""

from __future__ import annotations

import pytest

from playbooks import remote
from playbooks.base import StepContext
from playbooks.plan import Plan
from playbooks.remote import NodeRef, running_file, wait_for_leftover
from playbooks.rolling import Wave
from playbooks.upgrade_cluster import UpgradeWorkers
from playbooks.upgrade_cluster_plan import UpgradeWorkersParams
from tests.fakes import FakeKube, FakeShell, Reply, cluster_of, node


def context(shell: FakeShell, kube: FakeKube, said: list[str], partial: Wave) -> StepContext:
    async def say(text: str) -> None:
        said.append(text)

    plan = Plan(verb="upgrade", cluster="test", target="cluster", title="", steps=[])
    return StepContext(
        cluster=cluster_of(kube, shell),
        plan=plan,
        job_id=7,
        results={},
        say=say,
        partial=partial.as_checkpoint(),
    )


async def test_a_resumed_node_at_the_target_is_uncordoned_not_taken_as_done() -> None:
    kube = FakeKube(
        node("cp-1", roles=("control-plane",), kubelet="v1.31.3", internal_ip="10.0.0.1"),
        # Killed after its kubelet restart: it reports the target, still cordoned by the job.
        node("worker-1", kubelet="v1.31.3", unschedulable=True, internal_ip="10.0.0.11"),
        version="v1.31.3",
    )
    shell = FakeShell()
    shell.reply(["kubeadm", "version", "-o", "short"], Reply(stdout="v1.31.3\n"))
    shell.reply(["kubelet", "--version"], Reply(stdout="Kubernetes v1.31.3\n"))
    shell.reply(["apt-mark", "showhold"], Reply(stdout="kubeadm\nkubelet\nkubectl\n"))
    cordoned = {"changed": True, "was_unschedulable": False}
    wave = Wave(before={"worker-1": False}, steps={"worker-1": {"cordon": cordoned}})
    ctx = context(shell, kube, [], wave)
    params = UpgradeWorkersParams(nodes=["worker-1"], version="v1.31.3", max_unavailable=1)

    result = await UpgradeWorkers("Upgrade workers", params).run(ctx)

    assert result.ok, result.summary
    assert not kube.node("worker-1").unschedulable
    finished = result.outcome(Wave).steps["worker-1"]
    assert {"health-gate", "uncordon"} <= set(finished)


async def test_a_node_the_job_never_touched_and_already_at_the_target_is_left_alone() -> None:
    kube = FakeKube(
        node("cp-1", roles=("control-plane",), kubelet="v1.31.3", internal_ip="10.0.0.1"),
        node("worker-1", kubelet="v1.31.3", unschedulable=True, internal_ip="10.0.0.11"),
        version="v1.31.3",
    )
    shell = FakeShell()
    ctx = context(shell, kube, [], Wave())
    params = UpgradeWorkersParams(nodes=["worker-1"], version="v1.31.3", max_unavailable=2)

    result = await UpgradeWorkers("Upgrade workers", params).run(ctx)

    assert result.ok, result.summary
    assert kube.node("worker-1").unschedulable  # cordoned by someone else: not ours to undo
    assert shell.ran("worker-1") == []


async def test_a_command_still_running_from_before_the_restart_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote, "LEFTOVER_POLL_S", 0.0)
    kube = FakeKube(
        node("cp-1", roles=("control-plane",), kubelet="v1.31.2", internal_ip="10.0.0.1")
    )
    shell = FakeShell()
    check = ("sh", "-c", remote.LEFTOVER, "sh", running_file(7, "kubeadm-upgrade"))
    still = Reply(stdout="running 4242 kubeadm upgrade apply v1.31.3 --yes\n")
    shell.reply(check, still, still, Reply(stdout="none\n"))
    said: list[str] = []
    ctx = context(shell, kube, said, Wave())

    await wait_for_leftover(ctx, NodeRef(name="cp-1"), "kubeadm-upgrade")

    assert shell.ran("cp-1") == [check] * 3
    assert said[0] == (
        "cp-1: waiting for the `kubeadm upgrade apply v1.31.3 --yes` kubegate started before "
        "it restarted (pid 4242)"
    )
    assert "has ended" in said[-1]
