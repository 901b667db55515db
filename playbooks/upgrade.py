"""Upgrade one node the kubeadm way, drained first: cordon and evict, kubeadm package,
`kubeadm upgrade apply|node`, kubelet and kubectl packages, kubelet restart, uncordon (if it
was schedulable), health gate. Planned in playbooks/upgrade_plan.py.
"""

from __future__ import annotations

from typing import ClassVar

from commands import Command, DrainCommand, UpgradeNodeCommand
from playbooks.base import ClusterHandle, Playbook, Step
from playbooks.drain import EvictPods, WaitUntilGone, drain_drift
from playbooks.health import HealthGate
from playbooks.packages import UpgradeKubeadm, UpgradeKubelet
from playbooks.plan import Plan
from playbooks.remote import NodeRef
from playbooks.upgrade_plan import parse_version, plan_node_upgrade
from playbooks.upgrade_steps import (
    CordonForUpgrade,
    KubeadmUpgrade,
    RestartKubelet,
    UncordonIfItWas,
)

# The facts whose change since approval calls for a fresh one (besides the drain's).
UPGRADE_FACTS = {
    "kubelet_version": "kubelet version",
    "api_server_version": "API server version",
    "role": "role",
    "kubeadm": "kubeadm procedure",
}


class UpgradePlaybook(Playbook):
    verb: ClassVar[str] = "upgrade"

    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        assert isinstance(command, UpgradeNodeCommand)
        return await plan_node_upgrade(command, cluster)

    def steps(self, plan: Plan, command: Command) -> list[Step]:
        assert isinstance(command, UpgradeNodeCommand)
        node, titles = plan.target, [step.title for step in plan.steps]
        version = parse_version(command.to_version, "the target version")
        drain = DrainCommand(node=node)
        apply = plan.facts.get("kubeadm") == "apply"
        return [
            CordonForUpgrade(titles[0], node=node, unschedulable=True),
            EvictPods(titles[1], command=drain),
            WaitUntilGone(titles[2], node=node),
            UpgradeKubeadm(titles[3], node=NodeRef(node), version=version),
            KubeadmUpgrade(titles[4], node=node, version=version, apply=apply),
            UpgradeKubelet(titles[5], node=NodeRef(node), version=version),
            RestartKubelet(titles[6], node=node, version=version),
            UncordonIfItWas(titles[7], node=node),
            HealthGate(titles[8], node=node, kubelet_version=str(version)),
        ]

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        changes = [
            f"{words}: {approved.facts.get(fact)} then, {fresh.facts.get(fact)} now"
            for fact, words in UPGRADE_FACTS.items()
            if approved.facts.get(fact) != fresh.facts.get(fact)
        ]
        return changes + drain_drift(approved.facts, fresh.facts)
