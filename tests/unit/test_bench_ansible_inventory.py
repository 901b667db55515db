"""The Ansible peer of bench.upgrade reaches every testbed node at its own sshd, in kubespray's
groups; a wrong group or a wrong sshd is caught before anything is timed."""

from __future__ import annotations

from typing import Any

import pytest

from bench.ansible.peer import inventory, inventory_problems

pytestmark = pytest.mark.timeout(10)


def described() -> dict[str, Any]:
    """The parts of testbed.json the inventory reads, as `python -m testbed up` writes them."""
    nodes = {
        name: {"address": f"127.0.10.{i}", "port": 2200 + i, "role": role}
        for i, (name, role) in enumerate(
            [("cp-1", "control-plane"), ("cp-2", "control-plane"), ("worker-1", "worker")],
            start=1,
        )
    }
    return {
        "control_planes": [
            {"name": "cp-1", "apiserver_url": "https://127.0.0.1:6443"},
            {"name": "cp-2", "apiserver_url": "https://127.0.0.1:6444"},
        ],
        "ssh": {
            "user": "fleet",
            "private_key": "/tmp/key",
            "known_hosts": "/tmp/known_hosts",
            "nodes": nodes,
        },
    }


def as_listed(made: dict[str, Any]) -> dict[str, Any]:
    """What `ansible-inventory --list` prints for a YAML inventory: groups, then hostvars."""
    children = made["all"]["children"]
    listed: dict[str, Any] = {"_meta": {"hostvars": {}}}
    for group in ("kube_control_plane", "kube_node"):
        hosts = children[group]["hosts"]
        listed[group] = {"hosts": list(hosts)}
        listed["_meta"]["hostvars"].update(hosts)
    return listed


def test_control_planes_come_first_in_their_own_group_and_workers_in_theirs() -> None:
    children = inventory(described())["all"]["children"]
    assert list(children["kube_control_plane"]["hosts"]) == ["cp-1", "cp-2"]
    assert list(children["kube_node"]["hosts"]) == ["worker-1"]
    assert children["kube_node"]["hosts"]["worker-1"] == {
        "ansible_host": "127.0.10.3",
        "ansible_port": 2203,
    }


def test_every_host_key_is_pinned() -> None:
    common = inventory(described())["all"]["vars"]["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in common
    assert "UserKnownHostsFile=/tmp/known_hosts" in common


def test_a_good_inventory_has_no_problems() -> None:
    description = described()
    assert inventory_problems(as_listed(inventory(description)), description) == []


def test_a_worker_reached_at_another_sshd_is_a_problem() -> None:
    description = described()
    listed = as_listed(inventory(description))
    listed["_meta"]["hostvars"]["worker-1"]["ansible_port"] = 2201
    problems = inventory_problems(listed, description)
    assert len(problems) == 1 and "worker-1" in problems[0]
