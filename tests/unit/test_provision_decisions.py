"""What provision decides without a host: refusals and plans from a snapshot, the join command
it trusts, the package commands it (and upgrade) sends."""

from __future__ import annotations

import pytest

from commands import ProvisionNodeCommand
from playbooks.base import PlanError
from playbooks.inventory import Inventory
from playbooks.join import parse_join_command
from playbooks.kube import NodeView
from playbooks.packages import install_commands
from playbooks.provision_plan import ProvisionSnapshot, decide_provision
from playbooks.versions import Version
from tests.unit.cluster_snapshots import CLUSTER, INVENTORY, node

HASH = "sha256:" + "ab" * 32
PRINTED = f"kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {HASH} \n"


def test_the_printed_join_command_is_read_value_by_value() -> None:
    join = parse_join_command(PRINTED)
    assert join is not None
    assert (join.endpoint, join.token, join.ca_hash) == (
        "10.0.0.1:6443",
        "abcdef.0123456789abcdef",
        HASH,
    )
    assert join.command.argv[:3] == ("kubeadm", "join", "10.0.0.1:6443")


def test_the_join_commands_label_never_carries_the_token() -> None:
    join = parse_join_command(PRINTED)
    assert join is not None and "0123456789abcdef" not in join.command.label


def test_anything_but_a_plain_worker_join_command_is_not_trusted() -> None:
    assert parse_join_command("") is None
    assert parse_join_command(PRINTED.replace("10.0.0.1:6443", "$(reboot):6443")) is None
    assert parse_join_command(PRINTED + " --control-plane") is None
    assert parse_join_command(PRINTED.replace("--token", "--tokens")) is None
    assert parse_join_command(PRINTED.replace(HASH, "sha256:nothex")) is None


def test_apt_unholds_installs_the_pkgs_k8s_io_revision_and_holds_again() -> None:
    argv = [c.argv for c in install_commands("apt", ("kubelet", "kubectl"), Version(1, 31, 3))]
    assert argv == [
        ("apt-mark", "unhold", "kubelet", "kubectl"),
        ("apt-get", "update"),
        ("apt-get", "install", "-y", "kubelet=1.31.3-*", "kubectl=1.31.3-*"),
        ("apt-mark", "hold", "kubelet", "kubectl"),
    ]


def test_dnf_lifts_the_kubernetes_repos_exclude_for_this_install_only() -> None:
    [command] = install_commands("dnf", ("kubeadm",), Version(1, 31, 3))
    assert command.argv == (
        "dnf",
        "install",
        "-y",
        "kubeadm-1.31.3",
        "--disableexcludes=kubernetes",
    )


def seen(
    nodes: list[NodeView] | None = None,
    *,
    inventory: Inventory = INVENTORY,
    api_server: str = "v1.31.2",
) -> ProvisionSnapshot:
    return ProvisionSnapshot("prod", inventory, CLUSTER if nodes is None else nodes, api_server)


def provision(
    name: str = "worker-4", address: str = "10.0.0.44", **options: str
) -> ProvisionNodeCommand:
    return ProvisionNodeCommand.model_validate({"node": name, "address": address, **options})


def refusal(command: ProvisionNodeCommand, snapshot: ProvisionSnapshot) -> str:
    with pytest.raises(PlanError) as refused:
        decide_provision(command, snapshot)
    return refused.value.message


def test_a_new_worker_is_prepared_installed_joined_and_awaited_in_that_order() -> None:
    plan = decide_provision(provision(), seen())
    assert [step.name for step in plan.steps] == [
        "swap-off",
        "kernel-modules",
        "sysctls",
        "containerd",
        "packages",
        "join",
        "node-ready",
    ]
    assert "1.31.2 (apt, held)" in plan.steps[4].title
    assert "token from cp-1 (the token is never shown)" in plan.steps[5].title
    assert plan.facts["join_from"] == "cp-1" and plan.facts["cluster_version"] == "v1.31.2"
    assert plan.locks == ["node/worker-4"]


def test_configured_labels_and_taints_add_a_last_step_naming_them() -> None:
    inventory = Inventory(
        new_nodes={"labels": {"pool": "batch"}, "taints": ["dedicated=batch:NoSchedule"]}
    )
    plan = decide_provision(provision(), seen(inventory=inventory))
    assert plan.steps[-1].name == "labels-taints"
    assert (
        plan.steps[-1].title == "Label and taint worker-4: pool=batch, dedicated=batch:NoSchedule"
    )
    assert plan.facts["taints"] == ["dedicated=batch:NoSchedule"]


def test_a_control_plane_is_not_provisioned_yet() -> None:
    said = refusal(provision(role="control-plane"), seen())
    assert "control-plane node is not available yet" in said


def test_an_address_outside_the_node_subnet_is_refused() -> None:
    said = refusal(
        provision(address="192.168.9.9"), seen(inventory=Inventory(node_subnet="10.0.0.0/24"))
    )
    assert "192.168.9.9 is outside cluster prod's node subnet 10.0.0.0/24" in said


def test_a_name_the_cluster_already_has_is_refused() -> None:
    said = refusal(provision(name="worker-2"), seen())
    assert "There is already a node `worker-2` in cluster prod" in said


def test_an_address_another_node_has_is_refused_naming_that_node() -> None:
    holder = CLUSTER[1]
    assert holder.internal_ip is not None
    said = refusal(provision(address=holder.internal_ip), seen())
    assert f"is already the address of node {holder.name}" in said


def test_an_address_the_inventory_gives_another_host_is_refused() -> None:
    inventory = Inventory(nodes={"worker-4": {"address": "10.0.0.99"}})
    said = refusal(provision(), seen(inventory=inventory))
    assert "inventory has worker-4 at 10.0.0.99, not 10.0.0.44" in said


def test_without_a_ready_control_plane_there_is_no_join_token_to_be_had() -> None:
    nodes = [node("cp-1", control_plane=True, ready=False), node("worker-1")]
    assert "No Ready control plane in cluster prod" in refusal(provision(), seen(nodes))


def test_a_bad_configured_taint_is_blamed_on_the_config() -> None:
    inventory = Inventory(new_nodes={"taints": ["dedicated=batch:Sometimes"]})
    said = refusal(provision(), seen(inventory=inventory))
    assert "new_nodes taint `dedicated=batch:Sometimes` is not valid" in said
    assert "Fix kubegate's config" in said
