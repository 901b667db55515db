"""Playbooks: one module per operation; each plans from the live cluster and runs as steps."""

from typing import Any

from playbooks.base import (
    ClusterHandle,
    PlanError,
    Playbook,
    RemoteShell,
    Step,
    StepContext,
    StepOutcome,
    StepResult,
    build_step,
    steps_of,
)
from playbooks.cordon import CordonPlaybook, UncordonPlaybook
from playbooks.drain import DrainPlaybook
from playbooks.errors import OperationError
from playbooks.etcd_restore import RestoreEtcdPlaybook
from playbooks.hpa import ScaleHpaPlaybook
from playbooks.kube import KubeApi, KubeError, Kubernetes, NodeView
from playbooks.pki_backup import BackupAnyPlaybook
from playbooks.plan import Plan, PlannedStep, StepParams, canonical_json
from playbooks.provision import ProvisionPlaybook
from playbooks.rotate_certs import RotateCertsPlaybook
from playbooks.taints import TaintPlaybook, UntaintPlaybook
from playbooks.upgrade_cluster import UpgradeAnyPlaybook

# The verbs kubegate can run today; adding one is a module and a line here.
PLAYBOOKS: dict[str, Playbook[Any]] = {
    playbook.verb: playbook
    for playbook in (
        CordonPlaybook(),
        UncordonPlaybook(),
        DrainPlaybook(),
        TaintPlaybook(),
        UntaintPlaybook(),
        ScaleHpaPlaybook(),
        BackupAnyPlaybook(),
        UpgradeAnyPlaybook(),
        ProvisionPlaybook(),
        RotateCertsPlaybook(),
        RestoreEtcdPlaybook(),
    )
}

__all__ = [
    "PLAYBOOKS",
    "ClusterHandle",
    "KubeApi",
    "KubeError",
    "Kubernetes",
    "NodeView",
    "OperationError",
    "Plan",
    "PlanError",
    "PlannedStep",
    "Playbook",
    "RemoteShell",
    "Step",
    "StepContext",
    "StepOutcome",
    "StepParams",
    "StepResult",
    "build_step",
    "canonical_json",
    "steps_of",
]
