"""What `rotate certs` and `/kube certs` decide from a snapshot: which control planes, what the
approvers and the asker read. No host, no cluster."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from commands import RotateCertsCommand
from playbooks.base import PlanError
from playbooks.cert_checks import NodeExpiry, kubelet_table, parse_enddate
from playbooks.certs_table import CertificateRow, ExpiryTable
from playbooks.certs_view import CertsSnapshot, certs_answer
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.rotate_certs import RotationSnapshot, decide_rotation
from tests.unit.cluster_snapshots import CLUSTER, INVENTORY, node

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
HA = [*CLUSTER, node("cp-2", control_plane=True), node("cp-3", control_plane=True)]


def expiring(node_name: str, days: float, name: str = "apiserver") -> NodeExpiry:
    row = CertificateRow(
        name=name,
        expires=NOW + timedelta(days=days),
        residual=f"{int(days)}d",
        authority="ca",
        externally_managed=False,
    )
    return NodeExpiry(node_name, ExpiryTable(certificates=(row,), authorities=()))


def seen(
    nodes: list[NodeView] = HA, *, vault: bool = True, inventory: Inventory = INVENTORY
) -> RotationSnapshot:
    expiries = {name: expiring(name, 20 + i) for i, name in enumerate(("cp-1", "cp-2", "cp-3"))}
    return RotationSnapshot("prod", inventory, vault, nodes, expiries, NOW)


def refusal(command: RotateCertsCommand, snapshot: RotationSnapshot) -> str:
    with pytest.raises(PlanError) as refused:
        decide_rotation(command, snapshot)
    return refused.value.message


def test_every_control_plane_is_rotated_one_at_a_time_with_its_soonest_expiry_shown() -> None:
    plan = decide_rotation(RotateCertsCommand(), seen())
    assert plan.facts == {"control_planes": ["cp-1", "cp-2", "cp-3"]}
    assert [step.name for step in plan.steps] == [
        "check-expiration",
        "renew-and-restart",
        "check-renewed",
        "refresh-kubeconfig",
        "store-in-vault",
    ]
    assert "one node at a time" in plan.steps[1].title
    assert plan.preview[0] == "cp-1: soonest apiserver, expires 2026-12-20 04:00 UTC (20d left)"
    assert plan.risk == "high" and plan.locks == ["*"]


def test_one_named_control_plane_is_rotated_alone() -> None:
    plan = decide_rotation(RotateCertsCommand(node="cp-2"), seen())
    assert plan.facts == {"control_planes": ["cp-2"]} and plan.target == "cp-2"
    assert plan.steps[0].touches == ["node/cp-2"]


def test_the_vault_step_says_it_is_skipped_when_no_vault_is_configured() -> None:
    plan = decide_rotation(RotateCertsCommand(), seen(vault=False))
    assert "skipped: no Vault configured" in plan.steps[-1].title


def test_the_vault_step_names_where_the_public_certificates_go() -> None:
    plan = decide_rotation(RotateCertsCommand(), seen())
    assert (
        "kubegate/pki/prod/<node>" in plan.steps[-1].title and "never keys" in plan.steps[-1].title
    )


def test_a_worker_is_refused_because_kubeadm_certificates_live_on_control_planes() -> None:
    said = refusal(RotateCertsCommand(node="worker-1"), seen())
    assert "worker-1 is not a control-plane node" in said and "/kube certs" in said


def test_an_unknown_node_is_refused_by_name() -> None:
    assert "There is no node `cp-9` in cluster prod" in refusal(
        RotateCertsCommand(node="cp-9"), seen()
    )


def test_a_control_plane_kubegate_cannot_reach_refuses_the_rotation() -> None:
    nodes = [node("cp-1", control_plane=True, ip=None), node("worker-1")]
    said = refusal(RotateCertsCommand(), seen(nodes))
    assert "does not know how to reach cp-1 over SSH" in said


def test_the_certs_answer_lists_each_control_plane_and_flags_what_is_near() -> None:
    answer = certs_answer(
        CertsSnapshot("prod", [expiring("cp-1", 5), expiring("cp-2", 200)]),
        now=NOW,
        warn_within=30,
    )
    assert answer.startswith("*Certificates of prod*")
    assert "*cp-1* · soonest: apiserver in 5d ⚠️" in answer
    assert "*cp-2* · soonest: apiserver in 200d\n" in answer


def test_the_certs_answer_shows_what_it_read_and_says_what_it_could_not() -> None:
    answer = certs_answer(
        CertsSnapshot("prod", [expiring("cp-1", 50)], problem="no SSH answer from cp-2"),
        now=NOW,
        warn_within=30,
    )
    assert "*cp-1*" in answer
    assert answer.endswith("kubegate could not read the certificates: no SSH answer from cp-2")


def test_rotation_is_refused_while_an_etcd_member_is_down_and_says_nothing_changed() -> None:
    down = "etcd is not healthy with every member up: https://127.0.10.3:2379 is unhealthy"
    snapshot = dataclasses.replace(seen(), etcd_problem=down)
    said = refusal(RotateCertsCommand(), snapshot)
    assert down in said and "quorum" in said and "nothing was changed" in said


def test_certs_answer_lists_every_nodes_kubelet_certificate_and_flags_the_near_one() -> None:
    kubelets = [
        NodeExpiry("worker-1", kubelet_table(NOW + timedelta(days=200))),
        NodeExpiry("worker-2", kubelet_table(NOW + timedelta(days=5))),
    ]
    snapshot = CertsSnapshot("prod", [expiring("cp-1", 90)], kubelets=kubelets)
    answer = certs_answer(snapshot, now=NOW, warn_within=30)
    table = answer.split("Kubelet client certificates", 1)[1]
    assert table.index("worker-2") < table.index("worker-1")  # soonest first
    assert "5d  ⚠️" in table and "200d" in table
    assert [e.node for e in snapshot.all_expiries()] == ["cp-1", "worker-1", "worker-2"]


def test_openssls_end_date_is_read_as_utc() -> None:
    when = parse_enddate("notAfter=Nov 30 05:01:58 2027 GMT\n")
    assert when == datetime(2027, 11, 30, 5, 1, 58, tzinfo=UTC)


def test_on_the_only_control_plane_the_approvers_read_that_the_api_goes_away_briefly() -> None:
    plan = decide_rotation(RotateCertsCommand(), seen(CLUSTER))
    assert plan.facts == {"control_planes": ["cp-1"]}
    [warning] = [line for line in plan.preview if "only control plane" in line]
    assert "cp-1" in warning and "briefly unavailable" in warning
    assert not [
        line for line in decide_rotation(RotateCertsCommand(), seen()).preview if "⚠️" in line
    ]
