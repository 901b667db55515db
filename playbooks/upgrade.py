"""Upgrade one node the kubeadm way, drained first: cordon and evict, kubeadm package,
`kubeadm upgrade apply|node`, kubelet and kubectl packages, kubelet restart, uncordon (if it
was schedulable), health gate. Planned in playbooks/upgrade_plan.py; the steps are built by
name from the plan (playbooks/upgrade_steps.py, drain, packages, health).
"""

from __future__ import annotations

from typing import Any

from playbooks.base import ClusterHandle
from playbooks.drain import EvictPods, drain_drift, drain_facts, facts_mid_drain
from playbooks.plan import Plan
from playbooks.upgrade_api_servers import described
from playbooks.upgrade_plan import (
    NodeUpgradeSnapshot,
    find_node,
    observe_node_upgrade,
    parse_version,
)

# The facts whose change since approval calls for a fresh one (besides the drain's).
UPGRADE_FACTS = {
    "kubelet_version": "kubelet version",
    "api_server_version": "API server version",
    "role": "role",
    "kubeadm": "kubeadm procedure",
}


def node_upgrade_drift(approved: Plan, fresh: Plan) -> list[str]:
    """What changed since approval that bears on one node's upgrade."""
    changes = [
        f"{words}: {approved.facts.get(fact)} then, {fresh.facts.get(fact)} now"
        for fact, words in UPGRADE_FACTS.items()
        if approved.facts.get(fact) != fresh.facts.get(fact)
    ]
    return changes + drain_drift(approved.facts, fresh.facts)


async def node_facts_for_remaining(
    approved: Plan, cluster: ClusterHandle, *, finished: frozenset[str]
) -> dict[str, Any]:
    if EvictPods.name in finished:
        return approved.facts
    seen = await observe_node_upgrade(approved.target, cluster)
    return facts_mid_upgrade(approved, seen, finished=finished)


def facts_mid_upgrade(
    approved: Plan, seen: NodeUpgradeSnapshot, *, finished: frozenset[str]
) -> dict[str, Any]:
    """The facts that bear on the steps still to run of a node upgrade that already began. Pure.

    Until its pods are evicted, nothing on the node has changed: the drain's facts count as
    for a drain that began (this job's own cordon is not drift), and so do the versions. Once
    they are evicted, every later step re-reads what it acts on: the approved facts stand
    (`kubeadm upgrade apply` moving the API server is this job's own change).
    """
    if EvictPods.name in finished:
        return approved.facts
    node = find_node(seen, approved.target)
    now = drain_facts(seen.drain, seen.pdbs)
    return {
        **approved.facts,
        **facts_mid_drain(approved.facts, now),
        "kubelet_version": str(parse_version(node.kubelet_version, "the kubelet version")),
        "api_server_version": described(seen.api_servers),
    }
