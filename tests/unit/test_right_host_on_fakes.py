"""The right host before anything changes (issue 8), on the fake tier: a plan whose node's
address leads to another host is refused naming both and the address; a host that changed after
approval halts the node's upgrade at its first step, before its cordon, with nothing to undo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from commands import RotateCertsCommand, UpgradeClusterCommand, UpgradeNodeCommand
from playbooks.base import PlanError, StepContext
from playbooks.inventory import Inventory, NodeAccess
from playbooks.plan import Plan
from playbooks.right_host import HostAnswer
from playbooks.rolling import Wave
from playbooks.rotate_certs import RotateCertsPlaybook
from playbooks.ssh import CommandResult, OutputSink, SshTarget, WrongHostError
from playbooks.ssh_identity import HostIdentity, wrong_host
from playbooks.upgrade_cluster import UpgradeWorkers
from playbooks.upgrade_cluster_plan import UpgradeWorkersParams, plan_cluster_upgrade
from playbooks.upgrade_plan import NodeUpgradeSnapshot, decide_node_upgrade, plan_node_upgrade
from tests.fakes import FakeKube, FakeShell, Run, cluster_of, node, pod
from tests.unit.cluster_snapshots import CLUSTER, INVENTORY

WORKER_2_AT = "10.0.0.12"


@dataclass
class Fleet(FakeShell):
    """Hosts as the real executor meets them: one whose address now leads to another Node
    refuses before anything runs there, as playbooks/ssh.py's identity check does."""

    elsewhere: dict[str, HostIdentity] = field(default_factory=dict)

    async def run(
        self,
        target: SshTarget,
        argv: Sequence[str],
        *,
        timeout: float = 600,
        on_output: OutputSink | None = None,
    ) -> CommandResult:
        found = self.elsewhere.get(target.node)
        if found is not None:
            said = wrong_host(target.node, target.host, found)
            raise WrongHostError(said, node=target.node, identity=found)
        return await super().run(target, argv, timeout=timeout, on_output=on_output)


def worker_3_sent_to_worker_2() -> Inventory:
    return Inventory(nodes={"worker-3": NodeAccess(address=WORKER_2_AT)})


def cluster() -> FakeKube:
    return FakeKube(
        node("cp-1", roles=("control-plane",), kubelet="v1.31.3", internal_ip="10.0.0.1"),
        node("worker-2", internal_ip=WORKER_2_AT),
        node("worker-3", internal_ip="10.0.0.13"),
        pod("web-1", node="worker-3"),
        version="v1.31.3",
    )


async def test_an_upgrade_whose_node_address_leads_to_another_host_is_refused_naming_both() -> None:
    shell = Fleet(elsewhere={"worker-3": HostIdentity("worker-2", "its hostname")})
    kube = cluster()
    on_the_cluster = cluster_of(kube, shell)
    on_the_cluster.inventory = worker_3_sent_to_worker_2()
    with pytest.raises(PlanError) as refused:
        await plan_node_upgrade(
            UpgradeNodeCommand(node="worker-3", to_version="v1.31.3"), on_the_cluster
        )
    said = refused.value.message
    assert said.startswith("Refusing to upgrade worker-3; nothing was changed.")
    assert (
        f"worker-3's inventory address {WORKER_2_AT} leads to worker-2, not to worker-3 "
        "(its hostname says so)" in said
    )
    assert not kube.node("worker-3").unschedulable


async def test_a_cluster_upgrade_reaching_a_misdirected_worker_is_refused_before_approval() -> None:
    shell = Fleet(elsewhere={"worker-3": HostIdentity("worker-2", "its hostname")})
    kube = FakeKube(
        node("cp-1", roles=("control-plane",), internal_ip="10.0.0.1"),
        node("worker-2", internal_ip=WORKER_2_AT),
        node("worker-3", internal_ip="10.0.0.13"),
    )
    on_the_cluster = cluster_of(kube, shell)
    on_the_cluster.inventory = worker_3_sent_to_worker_2()
    with pytest.raises(PlanError) as refused:
        await plan_cluster_upgrade(UpgradeClusterCommand(to_version="v1.31.3"), on_the_cluster)
    said = refused.value.message
    assert said.startswith("Refusing to upgrade cluster test; nothing was changed.")
    assert f"worker-3's inventory address {WORKER_2_AT} leads to worker-2" in said


def seen_with(host: HostAnswer | None, *, version: str = "v1.31.2") -> NodeUpgradeSnapshot:
    return NodeUpgradeSnapshot("prod", INVENTORY, CLUSTER, {"cp-1": version}, host=host)


def test_a_host_that_could_not_be_asked_leaves_the_plan_as_before_and_warns_the_approvers() -> None:
    down = HostAnswer("worker-1", "10.0.0.11", unreachable="cannot connect to worker-1: refused")
    plan = decide_node_upgrade(
        UpgradeNodeCommand(node="worker-1", to_version="v1.31.3"),
        seen_with(down, version="v1.31.3"),
    )
    assert plan.steps[0].name == "confirm-host"
    assert any(
        "could not ask worker-1's host who it is (cannot connect" in line for line in plan.preview
    )


def test_a_node_already_at_the_target_is_nothing_to_do_whoever_answers_at_its_address() -> None:
    wrong = HostAnswer("worker-2", "10.0.0.11", wrong="worker-2's InternalIP leads to worker-1")
    plan = decide_node_upgrade(
        UpgradeNodeCommand(node="worker-2", to_version="v1.31.2"), seen_with(wrong)
    )
    assert plan.nothing_to_do == "worker-2 already runs v1.31.2; nothing to do."


async def upgrade_plan_of_worker_3(kube: FakeKube) -> Plan:
    """Approved while worker-3's address still led to worker-3."""
    return await plan_node_upgrade(
        UpgradeNodeCommand(node="worker-3", to_version="v1.31.3"), cluster_of(kube, Fleet())
    )


async def test_a_host_changed_after_approval_halts_at_the_first_step_with_the_node_untouched() -> (
    None
):
    shell = Fleet()
    kube = cluster()
    plan = await upgrade_plan_of_worker_3(kube)
    shell.elsewhere["worker-3"] = HostIdentity("worker-2", "its hostname")
    run = Run(plan, cluster_of(kube, shell))

    result = await run.all()

    assert not result.ok and run.done == []
    assert result.summary.startswith("refusing to run on 10.0.0.13: it is worker-2, not worker-3")
    assert "Nothing was changed on worker-3" in result.summary
    assert not kube.node("worker-3").unschedulable
    assert [p["metadata"]["name"] for p in await kube.pods_on("worker-3")] == ["web-1"]
    assert shell.ran() == [] and await run.abort() == []


async def _quiet(text: str) -> None:
    return None


async def test_a_rolling_upgrade_stops_before_cordoning_a_worker_whose_host_changed() -> None:
    shell = Fleet()
    kube = cluster()
    shell.elsewhere["worker-3"] = HostIdentity("worker-2", "its hostname")
    on_the_cluster = cluster_of(kube, shell)
    plan = Plan(verb="upgrade", cluster="test", target="cluster", title="", steps=[])
    ctx = StepContext(cluster=on_the_cluster, plan=plan, job_id=1, results={}, say=_quiet)
    params = UpgradeWorkersParams(nodes=["worker-3"], version="v1.31.3", max_unavailable=1)

    result = await UpgradeWorkers("Upgrade workers", params).run(ctx)

    assert not result.ok
    # The node's first step, confirm-host, asks its host before the cordon.
    assert "worker-3: FAILED (worker-3: Confirm the host at worker-3's address" in result.summary
    assert "it is worker-2, not worker-3" in result.summary
    assert "Nothing was changed on worker-3" in result.summary
    assert list(result.outcome(Wave).failed) == ["worker-3"]
    assert not kube.node("worker-3").unschedulable
    assert [p["metadata"]["name"] for p in await kube.pods_on("worker-3")] == ["web-1"]


async def test_a_certificate_rotation_whose_control_plane_address_leads_elsewhere_is_refused() -> (
    None
):
    shell = Fleet(elsewhere={"cp-1": HostIdentity("worker-2", "its kubelet client certificate")})
    on_the_cluster = cluster_of(cluster(), shell)
    with pytest.raises(PlanError) as refused:
        await RotateCertsPlaybook().plan(RotateCertsCommand(), on_the_cluster)
    assert refused.value.message.startswith(
        "Refusing to rotate control-plane certificates; nothing was changed. cp-1's InternalIP "
        "10.0.0.1 leads to worker-2, not to cp-1 (its kubelet client certificate says so)."
    )
    assert shell.ran() == [], "nothing, not even `kubeadm certs check-expiration`, ran there"


async def test_the_approvers_read_that_the_host_answered_as_the_node_and_only_it_was_asked() -> (
    None
):
    shell = Fleet()
    plan = await plan_node_upgrade(
        UpgradeNodeCommand(node="worker-3", to_version="v1.31.3"), cluster_of(cluster(), shell)
    )
    assert "Host check: 10.0.0.13 answered as worker-3" in plan.preview
    assert shell.ran() == [("true",)] and shell.ran("worker-3") == [("true",)]
