"""Upgrade one node the kubeadm way, drained first: cordon and evict, kubeadm package,
`kubeadm upgrade apply|node`, kubelet and kubectl packages, kubelet restart, uncordon (if it
was schedulable), health gate. Planned in playbooks/upgrade_plan.py; the steps are built by
name from the plan (playbooks/upgrade_steps.py, drain, packages, health).
"""

from __future__ import annotations

from playbooks.drain import drain_drift
from playbooks.plan import Plan

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
