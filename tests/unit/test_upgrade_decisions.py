"""What `upgrade <node>` decides from a snapshot of the cluster: refusals and plans, no server."""

from __future__ import annotations

import dataclasses

import pytest

from commands import UpgradeNodeCommand
from playbooks.base import PlanError
from playbooks.drain import EvictPodsParams
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.packages import UpgradeKubeadmParams
from playbooks.plan import Plan, PlannedStep
from playbooks.pods import DrainSelection
from playbooks.upgrade import facts_mid_upgrade, node_upgrade_drift
from playbooks.upgrade_plan import NO_PODS, NodeUpgradeSnapshot, decide_node_upgrade
from playbooks.upgrade_steps import CordonForUpgradeParams
from tests.unit.cluster_snapshots import CLUSTER, INVENTORY, drain_of, node, pod


def seen(
    nodes: list[NodeView] | None = None,
    *,
    api_server: str = "v1.31.2",
    drain: DrainSelection = NO_PODS,
    inventory: Inventory = INVENTORY,
) -> NodeUpgradeSnapshot:
    return NodeUpgradeSnapshot(
        "prod", inventory, CLUSTER if nodes is None else nodes, {"cp-1": api_server}, drain
    )


def upgrade(node_name: str, to: str, snapshot: NodeUpgradeSnapshot) -> Plan:
    return decide_node_upgrade(UpgradeNodeCommand(node=node_name, to_version=to), snapshot)


def step(plan: Plan, name: str) -> PlannedStep:
    return next(each for each in plan.steps if each.name == name)


def refusal(node_name: str, to: str, snapshot: NodeUpgradeSnapshot) -> str:
    with pytest.raises(PlanError) as refused:
        upgrade(node_name, to, snapshot)
    return refused.value.message


def test_a_worker_following_the_api_server_gets_the_nine_kubeadm_steps_in_order() -> None:
    plan = decide_node_upgrade(
        UpgradeNodeCommand(node="worker-1", to_version="v1.31.3"), seen(api_server="v1.31.3")
    )
    assert [step.name for step in plan.steps] == [
        "confirm-host",
        "cordon",
        "evict-pods",
        "wait-gone",
        "kubeadm-package",
        "kubeadm-upgrade",
        "kubelet-packages",
        "restart-kubelet",
        "health-gate",
        "uncordon",
    ]
    assert "`kubeadm upgrade node` on worker-1" in step(plan, "kubeadm-upgrade").title
    assert plan.facts["kubeadm"] == "node" and plan.risk == "medium"
    assert plan.nothing_to_do is None and plan.locks == ["node/worker-1"]


def test_the_first_control_plane_runs_kubeadm_upgrade_apply_and_is_high_risk() -> None:
    plan = decide_node_upgrade(UpgradeNodeCommand(node="cp-1", to_version="v1.32.0"), seen())
    assert "`kubeadm upgrade apply v1.32.0 --yes` on cp-1" in step(plan, "kubeadm-upgrade").title
    assert plan.facts["role"] == "control-plane" and plan.risk == "high"
    names = [each.name for each in plan.steps]
    assert names[:2] == ["confirm-host", "etcd-healthy"], "checked before cp-1 is touched"
    assert names.index("snapshot") < names.index("verify") < names.index("copy-off-host")
    assert names.index("copy-off-host") < names.index("kubeadm-upgrade")
    assert set(plan.locks) == {"node/cp-1", "control-plane"}


def test_a_minor_upgrade_switches_the_package_source_first_and_says_so() -> None:
    plan = upgrade("cp-1", "v1.32.0", seen())
    assert step(plan, "kubeadm-package").title.startswith(
        "Switch the package source to v1.32 (https://pkgs.k8s.io/core:/stable:/v1.32/deb/)"
    )
    params = step(plan, "kubeadm-package").params
    assert isinstance(params, UpgradeKubeadmParams)
    assert params.at.source == "https://pkgs.k8s.io/core:/stable:/v1.32/deb/"


def test_a_patch_upgrade_leaves_the_package_source_alone() -> None:
    plan = upgrade("worker-1", "v1.31.3", seen())
    assert step(plan, "kubeadm-package").title.startswith("Upgrade the kubeadm package")
    params = step(plan, "kubeadm-package").params
    assert isinstance(params, UpgradeKubeadmParams) and params.at.source is None


def test_a_mirror_template_names_the_dnf_repository_of_the_new_minor() -> None:
    inventory = Inventory.model_validate(
        {
            "package_manager": "dnf",
            "package_repository": {"dnf": "https://mirror.internal/k8s/{minor}/rpm/"},
        }
    )
    plan = upgrade("cp-1", "v1.32.0", seen(inventory=inventory))
    assert "https://mirror.internal/k8s/v1.32/rpm/" in step(plan, "kubeadm-package").title


def test_a_second_control_plane_in_the_inventory_order_runs_kubeadm_upgrade_node() -> None:
    nodes = [*CLUSTER, node("cp-2", control_plane=True)]
    inventory = Inventory(control_planes=["cp-2", "cp-1"])
    plan = decide_node_upgrade(
        UpgradeNodeCommand(node="cp-1", to_version="v1.31.3"),
        seen(nodes, api_server="v1.31.3", inventory=inventory),
    )
    assert plan.facts["kubeadm"] == "node"


def test_a_node_already_at_the_target_is_nothing_to_do() -> None:
    plan = decide_node_upgrade(UpgradeNodeCommand(node="worker-2", to_version="v1.31.2"), seen())
    assert plan.nothing_to_do == "worker-2 already runs v1.31.2; nothing to do."


def test_a_node_that_is_not_in_the_cluster_is_refused_by_name() -> None:
    assert "There is no node `worker-9` in cluster prod" in refusal("worker-9", "v1.31.3", seen())


def test_a_worker_may_take_a_newer_patch_of_the_api_servers_minor() -> None:
    plan = upgrade("worker-1", "v1.31.3", seen())
    assert plan.nothing_to_do is None and len(plan.steps) == 10


def test_a_worker_a_minor_ahead_of_the_api_server_is_refused_with_what_to_do_first() -> None:
    said = refusal("worker-1", "v1.32.0", seen())
    assert said.startswith("Refusing to upgrade worker-1 to v1.32.0; nothing was changed.")
    assert "never be a newer minor than the oldest API server" in said
    assert "/kube upgrade cluster --to v1.32.0" in said


def test_the_oldest_of_several_api_servers_is_the_one_a_worker_is_held_to() -> None:
    nodes = [node(f"cp-{i}", control_plane=True) for i in (1, 2, 3)] + [node("worker-1")]
    servers = {"cp-1": "v1.32.0", "cp-2": "v1.32.0", "cp-3": "v1.31.2"}
    snapshot = NodeUpgradeSnapshot("prod", INVENTORY, nodes, servers)
    assert "cp-3's is at v1.31.2" in refusal("worker-1", "v1.32.0", snapshot)


def test_a_node_kubegate_cannot_reach_over_ssh_is_refused() -> None:
    nodes = [node("cp-1", control_plane=True), node("worker-1", ip=None)]
    said = refusal("worker-1", "v1.31.3", seen(nodes, api_server="v1.31.3"))
    assert "does not know how to reach worker-1 over SSH" in said


def test_pods_that_a_drain_would_lose_refuse_the_upgrade_and_name_the_drain_flags() -> None:
    drain = drain_of(pod("debug", owner=None), pod("cache-1", empty_dir=True))
    said = refusal("worker-1", "v1.31.3", seen(api_server="v1.31.3", drain=drain))
    assert "Draining it would lose pods" in said and "shop/debug" in said
    assert "--force" in said and "--delete-emptydir-data" in said


def test_with_the_drain_flags_the_plan_names_the_pods_whose_data_is_lost() -> None:
    drain = drain_of(pod("debug", owner=None), pod("cache-1", empty_dir=True))
    command = UpgradeNodeCommand(
        node="worker-1", to_version="v1.31.3", delete_emptydir_data=True, force=True
    )
    plan = decide_node_upgrade(command, seen(drain=drain))
    assert any(
        "Lost by the drain:" in line
        and "shop/cache-1 (emptyDir data)" in line
        and "shop/debug (no controller" in line
        for line in plan.preview
    ), plan.preview
    evict = step(plan, "evict-pods").params
    assert isinstance(evict, EvictPodsParams)
    assert evict.force and evict.delete_emptydir_data


def test_a_node_already_upgraded_is_not_refused_for_pods_it_will_not_drain() -> None:
    drain = drain_of(pod("debug", owner=None))
    plan = decide_node_upgrade(
        UpgradeNodeCommand(node="worker-1", to_version="v1.31.2"), seen(drain=drain)
    )
    assert plan.nothing_to_do is not None


def test_a_cordoned_node_is_planned_to_stay_cordoned_afterwards() -> None:
    nodes = [dataclasses.replace(n, unschedulable=n.name == "worker-3") for n in CLUSTER]
    plan = decide_node_upgrade(
        UpgradeNodeCommand(node="worker-3", to_version="v1.31.3"),
        seen(nodes, api_server="v1.31.3"),
    )
    assert plan.facts["was_unschedulable"] is True
    assert "(no: it was cordoned before)" in step(plan, "uncordon").title
    assert "cordoned already" in plan.preview[0]


def test_the_preview_counts_the_pods_to_evict_and_dnf_nodes_are_not_held() -> None:
    drain = drain_of(pod("web-1"), pod("web-2"))
    inventory = Inventory(package_manager="dnf")
    plan = decide_node_upgrade(
        UpgradeNodeCommand(node="worker-1", to_version="v1.31.3"),
        seen(api_server="v1.31.3", drain=drain, inventory=inventory),
    )
    assert step(plan, "evict-pods").title == "Drain: evict 2 pod(s) through their PDBs"
    package = step(plan, "kubeadm-package").title
    assert "(dnf)" in package and "held" not in package
    assert any("Evict 2 pod(s)" in line for line in plan.preview)


def test_a_rolling_upgrade_that_cordoned_the_node_itself_plans_to_uncordon_it_after_a_restart() -> (
    None
):
    # After a restart the node is found cordoned; the wave knows it was schedulable before.
    nodes = [dataclasses.replace(n, unschedulable=n.name == "worker-1") for n in CLUSTER]
    plan = decide_node_upgrade(
        UpgradeNodeCommand(node="worker-1", to_version="v1.31.3"),
        seen(nodes, api_server="v1.31.3"),
        cordoned_before=False,
    )
    cordon = step(plan, "cordon").params
    assert isinstance(cordon, CordonForUpgradeParams) and cordon.was_unschedulable is False
    assert step(plan, "uncordon").title == "Uncordon worker-1"


def approved_upgrade_of_worker_1() -> Plan:
    return decide_node_upgrade(
        UpgradeNodeCommand(node="worker-1", to_version="v1.31.3"),
        seen(api_server="v1.31.3", drain=drain_of(pod("web-1"))),
    )


def test_a_retry_after_the_cordon_does_not_count_the_jobs_own_cordon_as_drift() -> None:
    approved = approved_upgrade_of_worker_1()
    nodes = [dataclasses.replace(n, unschedulable=n.name == "worker-1") for n in CLUSTER]
    now = seen(nodes, api_server="v1.31.3", drain=drain_of(pod("web-1")))
    facts = facts_mid_upgrade(approved, now, finished=frozenset({"cordon"}))
    fresh = approved.model_copy(update={"facts": facts})
    assert node_upgrade_drift(approved, fresh) == []


def test_a_retry_before_the_evictions_sees_a_new_pod_that_would_be_lost() -> None:
    approved = approved_upgrade_of_worker_1()
    now = seen(api_server="v1.31.3", drain=drain_of(pod("web-1"), pod("debug", owner=None)))
    facts = facts_mid_upgrade(approved, now, finished=frozenset({"cordon"}))
    changes = node_upgrade_drift(approved, approved.model_copy(update={"facts": facts}))
    assert changes == ["new pod(s) that need --force: shop/debug"]


def test_once_the_pods_are_evicted_the_approved_facts_stand() -> None:
    approved = approved_upgrade_of_worker_1()
    moved = seen(api_server="v1.32.0", drain=drain_of(pod("debug", owner=None)))
    finished = frozenset({"cordon", "evict-pods", "wait-gone", "kubeadm-package"})
    assert facts_mid_upgrade(approved, moved, finished=finished) == approved.facts


def test_upgrading_the_only_control_plane_warns_the_api_goes_away_briefly() -> None:
    alone = upgrade("cp-1", "v1.31.3", seen())
    assert any("the only control plane" in line for line in alone.preview)
    with_others = upgrade("cp-1", "v1.31.3", seen([*CLUSTER, node("cp-2", control_plane=True)]))
    worker = upgrade("worker-1", "v1.31.3", seen(api_server="v1.31.3"))
    assert not [line for line in [*with_others.preview, *worker.preview] if "⚠️" in line]
