"""What provision decides without a host: refusals and plans from a snapshot, the join command
it trusts, the package commands it (and upgrade) sends."""

from __future__ import annotations

import json

import pytest

from commands import NewNodeTaint, ProvisionNodeCommand
from playbooks.base import PlanError
from playbooks.inventory import Inventory
from playbooks.join import join_configuration, parse_join_command
from playbooks.kube import NodeView
from playbooks.packages import install_commands
from playbooks.provision_plan import HostProbe, ProvisionSnapshot, decide_provision
from playbooks.provision_sources import source_commands
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
    assert join.token_id == "abcdef"


def test_the_join_configuration_names_the_node_and_carries_labels_and_taints() -> None:
    join = parse_join_command(PRINTED)
    assert join is not None
    taints = [NewNodeTaint.parse("dedicated=batch:NoSchedule")]
    config = json.loads(
        join_configuration(
            join,
            node="worker-9",
            version=Version(1, 31, 2),
            labels={"pool": "batch"},
            taints=taints,
        )
    )
    assert config["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    registration = config["nodeRegistration"]
    assert registration["name"] == "worker-9"
    assert registration["kubeletExtraArgs"] == [{"name": "node-labels", "value": "pool=batch"}]
    assert registration["taints"] == [
        {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
    ]
    assert config["discovery"]["bootstrapToken"]["caCertHashes"] == [HASH]


def test_an_older_kubeadm_gets_v1beta3_with_its_kubelet_args_as_a_map() -> None:
    join = parse_join_command(PRINTED)
    assert join is not None
    config = json.loads(
        join_configuration(
            join, node="worker-9", version=Version(1, 30, 5), labels={"pool": "batch"}, taints=[]
        )
    )
    assert config["apiVersion"] == "kubeadm.k8s.io/v1beta3"
    assert config["nodeRegistration"]["kubeletExtraArgs"] == {"node-labels": "pool=batch"}
    # An empty list, not none: a worker registers with no taint kubeadm would add by default.
    assert config["nodeRegistration"]["taints"] == []


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
    host: HostProbe | None = None,
) -> ProvisionSnapshot:
    return ProvisionSnapshot(
        "prod", inventory, CLUSTER if nodes is None else nodes, api_server, host
    )


def provision(
    name: str = "worker-4", address: str = "10.0.0.44", **options: object
) -> ProvisionNodeCommand:
    return ProvisionNodeCommand.model_validate({"node": name, "address": address, **options})


def refusal(command: ProvisionNodeCommand, snapshot: ProvisionSnapshot) -> str:
    with pytest.raises(PlanError) as refused:
        decide_provision(command, snapshot)
    return refused.value.message


def test_a_new_worker_is_prepared_given_its_source_installed_joined_and_awaited_in_order() -> None:
    plan = decide_provision(provision(), seen())
    assert [step.name for step in plan.steps] == [
        "swap-off",
        "kernel-modules",
        "sysctls",
        "containerd",
        "package-source",
        "packages",
        "join",
        "delete-join-tokens",
        "node-ready",
    ]
    assert "pkgs.k8s.io v1.31 package source" in plan.steps[4].title
    assert "1.31.2 (apt, held)" in plan.steps[5].title
    assert "1h token from cp-1 (never shown; deleted after)" in plan.steps[6].title
    assert plan.facts["join_from"] == "cp-1" and plan.facts["cluster_version"] == "v1.31.2"
    assert plan.locks == ["node/worker-4"]


def test_containerd_gets_the_sandbox_image_kubeadm_expects_for_the_clusters_minor() -> None:
    assert "registry.k8s.io/pause:3.10" in decide_provision(provision(), seen()).steps[3].title
    older = decide_provision(provision(), seen(api_server="v1.29.4"))
    assert "registry.k8s.io/pause:3.9" in older.steps[3].title
    assert "pkgs.k8s.io v1.29 package source" in older.steps[4].title


def test_labels_and_taints_are_registered_with_the_join_the_requests_winning() -> None:
    inventory = Inventory(
        new_nodes={"labels": {"pool": "general"}, "taints": ["dedicated=general:NoSchedule"]}
    )
    command = ProvisionNodeCommand.model_validate(
        {
            "node": "worker-4",
            "address": "10.0.0.44",
            "labels": ["pool=batch", "zone=a"],
            "taints": ["dedicated=batch:NoSchedule", "gpu:NoExecute"],
        }
    )
    plan = decide_provision(command, seen(inventory=inventory))
    join = next(step for step in plan.steps if step.name == "join")
    assert "registering with pool=batch, zone=a, dedicated=batch:NoSchedule, gpu:NoExecute" in (
        join.title
    )
    assert plan.facts["labels"] == {"pool": "batch", "zone": "a"}
    assert plan.facts["taints"] == ["dedicated=batch:NoSchedule", "gpu:NoExecute"]
    assert "registers already tainted: dedicated=batch:NoSchedule, gpu:NoExecute" in " ".join(
        plan.preview
    )


def test_a_host_whose_key_is_not_the_pinned_one_is_refused_before_anything_runs() -> None:
    probe = HostProbe(host_key_problem="the host key of 10.0.0.44:22 CHANGED: …")
    said = refusal(provision(), seen(host=probe))
    assert "will not provision 10.0.0.44: the host key of 10.0.0.44:22 CHANGED" in said


def test_a_host_kubegate_cannot_reach_is_refused_saying_nothing_changed() -> None:
    said = refusal(provision(), seen(host=HostProbe(unreachable="connection refused")))
    assert "cannot reach 10.0.0.44 over SSH (connection refused); nothing was changed" in said


def test_the_plan_names_the_hosts_own_hostname_and_the_name_it_registers_under() -> None:
    plan = decide_provision(provision(), seen(host=HostProbe(hostname="ip-10-0-0-44")))
    assert "(its hostname is ip-10-0-0-44; it registers as worker-4)" in plan.preview[0]


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


def test_apt_hosts_get_the_signing_key_then_the_source_of_the_clusters_minor() -> None:
    key, source = source_commands("apt", "v1.31")
    assert key.argv[-2:] == (
        "https://pkgs.k8s.io/core:/stable:/v1.31/deb/Release.key",
        "/etc/apt/keyrings/kubernetes-apt-keyring.gpg",
    )
    assert source.argv[-1] == (
        "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
        "https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /"
    )


def test_dnf_hosts_get_the_repo_file_with_the_kube_packages_excluded() -> None:
    [repo] = source_commands("dnf", "v1.30")
    assert repo.argv[-2] == "/etc/yum.repos.d/kubernetes.repo"
    assert "baseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/" in repo.argv[-1]
    assert "exclude=kubelet kubeadm kubectl" in repo.argv[-1]
