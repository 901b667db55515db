"""A new host is added to kubegate's inventory before it has its node name (as `spare-1`, or its
hostname): asked to provision it under another name, or to reach the Node it became, kubegate
uses that entry's port and user, found by the address."""

from __future__ import annotations

from playbooks.inventory import Inventory, NodeAccess
from tests.unit.cluster_snapshots import node

LISTED = Inventory.model_validate(
    {
        "ssh": {"user": "kubegate", "port": 22},
        "nodes": {
            "spare-1": {"address": "10.0.0.101", "port": 2201, "user": "ops"},
            "worker-1": {"address": "10.0.0.5", "port": 2205},
        },
    }
)


def test_a_host_listed_under_another_name_is_reached_at_its_entrys_port() -> None:
    target = LISTED.target_for_address("worker-9", "10.0.0.101")
    assert (target.node, target.host, target.port, target.user) == (
        "worker-9",
        "10.0.0.101",
        2201,
        "ops",
    )


def test_the_node_it_became_is_reached_the_same_way() -> None:
    target = LISTED.target(node("worker-9", ip="10.0.0.101"))
    assert target is not None and (target.host, target.port) == ("10.0.0.101", 2201)


def test_an_entry_under_the_asked_name_wins_and_an_unlisted_address_takes_the_defaults() -> None:
    named = Inventory(
        nodes={
            "worker-9": NodeAccess(address="10.0.0.101", port=2209),
            "spare-1": NodeAccess(address="10.0.0.101", port=2201),
        }
    )
    assert named.target_for_address("worker-9", "10.0.0.101").port == 2209
    unlisted = LISTED.target_for_address("worker-8", "10.0.0.102")
    assert (unlisted.port, unlisted.user) == (22, "kubegate")


def test_an_address_two_entries_list_is_not_guessed_between() -> None:
    twice = Inventory(
        nodes={
            "spare-1": NodeAccess(address="10.0.0.101", port=2201),
            "old-name": NodeAccess(address="10.0.0.101", port=2202),
        }
    )
    assert twice.target_for_address("worker-9", "10.0.0.101").port == 22
