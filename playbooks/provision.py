"""Provision a node: prepare the host, install kubeadm/kubelet/kubectl at the cluster's version,
join it with a fresh token from a control plane (a secret, kept in memory only), wait for it
to be Ready, then label and taint it as configured.

Planned in playbooks/provision_plan.py; its steps (host_prep, provision_steps, join) are built
by name from the plan.
"""

from __future__ import annotations

from typing import ClassVar

from commands import ProvisionNodeCommand
from playbooks.base import ClusterHandle, Playbook
from playbooks.plan import Plan
from playbooks.provision_plan import plan_provision


class ProvisionPlaybook(Playbook[ProvisionNodeCommand]):
    verb: ClassVar[str] = "provision"
    command_type = ProvisionNodeCommand

    async def plan(self, command: ProvisionNodeCommand, cluster: ClusterHandle) -> Plan:
        return await plan_provision(command, cluster)
