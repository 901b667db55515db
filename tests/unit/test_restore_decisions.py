"""`restore etcd` decided from what was observed: the plan an operator signs, and the refusals
that come before anything changes."""

from __future__ import annotations

import json
import re

import pytest

from playbooks.base import PlanError
from playbooks.etcd_members import MemberHealth, MemberPlan, member_from_manifest, parse_health
from playbooks.etcd_restore import RestoreSnapshot, decide_restore

MANIFEST = """apiVersion: v1
kind: Pod
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.11:2379
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://10.0.0.11:2380
    - --initial-cluster=cp-1=https://10.0.0.11:2380
    - --name=cp-1
"""


def members() -> list[MemberPlan]:
    return [
        MemberPlan(
            node=f"cp-{i}",
            address=f"10.0.0.1{i}",
            name=f"cp-{i}",
            peer_url=f"https://10.0.0.1{i}:2380",
            data_dir="/var/lib/etcd",
        )
        for i in (1, 2, 3)
    ]


def seen(**changes: object) -> RestoreSnapshot:
    fields: dict[str, object] = {
        "cluster": "prod",
        "backup": "etcd-prod-job4-20261130T020000Z",
        "backup_sha256": "ab" * 32,
        "backup_taken": 1_000_000.0,
        "has_vault": True,
        "members": members(),
        "unreadable": [],
        "health": [MemberHealth(f"cp-{i}", True) for i in (1, 2, 3)],
    }
    fields.update(changes)
    return RestoreSnapshot(**fields)  # type: ignore[arg-type]


def test_the_member_comes_from_its_kubeadm_manifest() -> None:
    member = member_from_manifest("cp-1", "10.0.0.11", MANIFEST)
    assert member == MemberPlan(
        node="cp-1",
        address="10.0.0.11",
        name="cp-1",
        peer_url="https://10.0.0.11:2380",
        data_dir="/var/lib/etcd",
    )


def test_the_plan_stops_every_api_server_before_restoring_each_member_by_its_name() -> None:
    plan = decide_restore(seen(), now=1_000_000.0 + 7200)
    assert [s.name for s in plan.steps] == [
        "stage-snapshot",
        "stop-apiservers",
        "restore-members",
        "swap-data",
        "start-etcd",
        "start-apiservers",
        "clean-up",
    ]
    restore = plan.steps[2].title
    for i in (1, 2, 3):
        assert f"--name=cp-{i} --initial-advertise-peer-urls=https://10.0.0.1{i}:2380" in restore
    assert (
        "--initial-cluster=cp-1=https://10.0.0.11:2380,cp-2=https://10.0.0.12:2380,"
        "cp-3=https://10.0.0.13:2380" in restore
    )
    assert plan.risk == "high" and plan.locks == ["*"]
    assert any("2.0 h ago) is lost" in line for line in plan.preview)


def test_a_member_down_refuses_explaining_quorum() -> None:
    health = [MemberHealth("cp-1", True), MemberHealth("cp-2", False, "connection refused")]
    health.append(MemberHealth("cp-3", True))
    with pytest.raises(PlanError) as refused:
        decide_restore(seen(health=health), now=0)
    text = str(refused.value)
    assert "cp-2 (connection refused)" in text and "2 of 3 healthy" in text
    assert "quorum" in text and "before anything changed" in text


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"backup_sha256": None}, "`/kube backups` lists them"),
        ({"has_vault": False}, "no Vault"),
        ({"unreadable": ["cp-3: permission denied"]}, "cp-3: permission denied"),
        ({"health": None}, "No etcd member answers"),
    ],
)
def test_what_a_restore_cannot_do_without_is_said_before_anything_changes(
    changes: dict[str, object], says: str
) -> None:
    with pytest.raises(PlanError, match=re.escape(says)):
        decide_restore(seen(**changes), now=0)


def test_health_joins_members_and_checks_by_client_url() -> None:
    listed = {
        "members": [
            {"ID": 1, "name": "cp-1", "clientURLs": ["https://10.0.0.11:2379"]},
            {"ID": 2, "name": "cp-2", "clientURLs": ["https://10.0.0.12:2379"]},
        ]
    }
    checked = [
        {"endpoint": "https://10.0.0.11:2379", "health": True},
        {
            "endpoint": "https://10.0.0.12:2379",
            "health": False,
            "error": "context deadline exceeded",
        },
    ]
    health = parse_health(json.dumps(listed), json.dumps(checked))
    assert health == [
        MemberHealth("cp-1", True),
        MemberHealth("cp-2", False, "context deadline exceeded"),
    ]
