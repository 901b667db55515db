"""Provision a node: prepare the host, install kubeadm/kubelet/kubectl at the cluster's version,
join it with a fresh token from a control plane (a secret, kept in memory only), wait for it
to be Ready, then label and taint it as configured. Planned in playbooks/provision_plan.py.
"""

from __future__ import annotations

from typing import ClassVar

from commands import Command, ProvisionNodeCommand
from playbooks.base import ClusterHandle, Playbook, Step
from playbooks.host_prep import HOST_PREPARATION
from playbooks.join import JoinCluster
from playbooks.plan import Plan
from playbooks.provision_plan import plan_provision
from playbooks.provision_steps import LabelAndTaint, NodeReady, ProvisionPackages, taint_command
from playbooks.remote import NodeRef
from playbooks.versions import Version


class ProvisionPlaybook(Playbook):
    verb: ClassVar[str] = "provision"

    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        assert isinstance(command, ProvisionNodeCommand)
        return await plan_provision(command, cluster)

    def steps(self, plan: Plan, command: Command) -> list[Step]:
        assert isinstance(command, ProvisionNodeCommand)
        node = NodeRef(plan.target, str(command.address))
        titles = [step.title for step in plan.steps]
        version = Version.parse(str(plan.facts["cluster_version"]))
        assert version is not None
        steps: list[Step] = [
            step(title, node=node)
            for (step, _), title in zip(HOST_PREPARATION, titles, strict=False)
        ]
        steps += [
            ProvisionPackages(titles[4], node=node, version=version),
            JoinCluster(titles[5], node=node, control_plane=str(plan.facts["join_from"])),
            NodeReady(titles[6], node=plan.target, kubelet_version=str(version)),
        ]
        if len(titles) > len(steps):
            # As planned and approved, whatever the config says by now.
            labels = dict(plan.facts.get("labels") or {})
            taints = [taint_command(plan.target, t) for t in plan.facts.get("taints") or []]
            steps.append(LabelAndTaint(titles[7], node=plan.target, labels=labels, taints=taints))
        return steps
