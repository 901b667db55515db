"""What `provision node --role control-plane` decides from a snapshot: refused without a stable
controlPlaneEndpoint or with etcd not whole; the CA from Vault or kubeadm's certificate key; the
control-plane taint kept; the control-plane lock; the JoinConfiguration's controlPlane."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from commands import ProvisionNodeCommand
from playbooks.base import PlanError
from playbooks.inventory import Inventory
from playbooks.join import (
    ControlPlaneJoin,
    JoinClusterParams,
    join_configuration,
    parse_join_command,
)
from playbooks.provision_control_plane import control_plane_endpoint
from playbooks.provision_plan import ProvisionSnapshot, decide_provision
from playbooks.versions import Version
from tests.unit.cluster_snapshots import CLUSTER

IN_VAULT = Inventory(pki_in_vault=True)
HASH = "sha256:" + "ab" * 32
PRINTED = (
    f"kubeadm join lb:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {HASH}"
)


def seen(**changes: object) -> ProvisionSnapshot:
    snapshot = ProvisionSnapshot(
        "prod",
        IN_VAULT,
        CLUSTER,
        "v1.31.2",
        control_plane_endpoint="lb.prod:6443",
        vault_configured=True,
    )
    return replace(snapshot, **changes)  # type: ignore[arg-type]


def control_plane(name: str = "cp-2") -> ProvisionNodeCommand:
    return ProvisionNodeCommand.model_validate(
        {"node": name, "address": "10.0.0.12", "role": "control-plane"}
    )


def refusal(snapshot: ProvisionSnapshot) -> str:
    with pytest.raises(PlanError) as refused:
        decide_provision(control_plane(), snapshot)
    return refused.value.message


def test_a_cluster_without_a_control_plane_endpoint_gets_no_second_control_plane() -> None:
    said = refusal(seen(control_plane_endpoint=None))
    assert "has no controlPlaneEndpoint" in said and "load balancer" in said


def test_no_member_is_added_while_an_etcd_member_is_unhealthy() -> None:
    said = refusal(seen(etcd_problem="https://10.0.0.11:2379 is unhealthy"))
    assert "etcd must be healthy with every member up before a member is added" in said
    assert "10.0.0.11:2379 is unhealthy" in said


def test_pki_in_vault_without_a_vault_is_refused() -> None:
    assert "has no Vault configured" in refusal(seen(vault_configured=False))


def test_a_control_plane_gets_its_ca_from_vault_etcd_checked_right_before_the_join() -> None:
    plan = decide_provision(control_plane(), seen())
    names = [step.name for step in plan.steps]
    assert names[names.index("packages") + 1 :] == [
        "place-cluster-pki",
        "etcd-healthy",
        "join",
        "delete-join-tokens",
        "control-plane-whole",
        "node-ready",
    ]
    assert "kubegate/pki/prod/cluster-pki" in plan.steps[names.index("place-cluster-pki")].title
    join = plan.steps[names.index("join")].params
    assert isinstance(join, JoinClusterParams)
    assert join.as_control_plane and not join.upload_certs
    assert join.api_server_port == 6443  # kubeadm's default, the inventory naming none
    assert "control-plane" in plan.locks and plan.risk == "high"
    assert [t.taint for t in join.taints] == ["node-role.kubernetes.io/control-plane:NoSchedule"]
    assert "behind lb.prod:6443" in " ".join(plan.preview)


def test_without_the_pki_in_vault_the_join_uses_a_certificate_key_from_upload_certs() -> None:
    plan = decide_provision(control_plane(), seen(inventory=Inventory()))
    names = [step.name for step in plan.steps]
    assert "place-cluster-pki" not in names
    join = plan.steps[names.index("join")].params
    assert isinstance(join, JoinClusterParams) and join.upload_certs
    assert (
        "1h token from cp-1 (never shown; deleted after) and a certificate key from `kubeadm init phase upload-certs` there"
        in (plan.steps[names.index("join")].title)
    )


def test_the_join_configuration_of_a_control_plane_carries_its_address_and_key() -> None:
    join = parse_join_command(PRINTED)
    assert join is not None
    key = "0f" * 32
    config = json.loads(
        join_configuration(
            join,
            node="cp-2",
            version=Version(1, 31, 2),
            labels={},
            taints=[],
            control_plane=ControlPlaneJoin("10.0.0.12", certificate_key=key),
        )
    )
    assert config["controlPlane"] == {
        "localAPIEndpoint": {"advertiseAddress": "10.0.0.12", "bindPort": 6443},
        "certificateKey": key,
    }


def test_the_control_plane_endpoint_is_read_from_the_cluster_configuration() -> None:
    assert control_plane_endpoint("apiServer: {}\ncontrolPlaneEndpoint: lb:6443\n") == "lb:6443"
    assert control_plane_endpoint('controlPlaneEndpoint: ""\nkind: ClusterConfiguration\n') is None
    assert control_plane_endpoint("kind: ClusterConfiguration\n") is None


def test_the_api_server_port_is_the_one_the_inventory_names_for_the_new_control_plane() -> None:
    inventory = Inventory(
        pki_in_vault=True, nodes={"cp-2": {"api_server": "https://10.0.0.12:7443"}}
    )
    plan = decide_provision(control_plane(), seen(inventory=inventory))
    [join] = [step.params for step in plan.steps if step.name == "join"]
    assert isinstance(join, JoinClusterParams) and join.api_server_port == 7443


def test_a_cluster_whose_pki_is_not_in_vault_yet_is_told_to_back_it_up_first() -> None:
    said = refusal(seen(pki_missing_from_vault=True))
    assert "Vault has none at kubegate/pki/prod/cluster-pki yet" in said
    assert "run `/kube backup pki` first" in said and "nothing was changed" in said
