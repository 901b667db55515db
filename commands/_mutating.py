"""The typed requests that change the cluster, one model per operation."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from commands._models import MutatingCommand
from commands._validators import (
    Duration,
    Effect,
    HostAddress,
    KubernetesVersion,
    MaxUnavailable,
    Namespace,
    NodeLabels,
    NodeName,
    ObjectName,
    ReplicaCount,
    Role,
    TaintKey,
    TaintValue,
    format_duration,
)

DEFAULT_DRAIN_TIMEOUT = timedelta(minutes=10)


class _NodeCommand(MutatingCommand):
    node: NodeName

    @property
    def target(self) -> str:
        return self.node


class CordonCommand(_NodeCommand):
    verb: Literal["cordon"] = "cordon"

    def summary(self) -> str:
        return f"Cordon {self.node}"


class UncordonCommand(_NodeCommand):
    verb: Literal["uncordon"] = "uncordon"

    def summary(self) -> str:
        return f"Uncordon {self.node}"


class DrainCommand(_NodeCommand):
    verb: Literal["drain"] = "drain"
    timeout: Duration = DEFAULT_DRAIN_TIMEOUT
    delete_emptydir_data: bool = False
    force: bool = False

    def summary(self) -> str:
        details = [f"timeout {format_duration(self.timeout)}"]
        if self.delete_emptydir_data:
            details.append("delete emptyDir data")
        if self.force:
            details.append("force")
        return f"Drain {self.node} ({', '.join(details)})"


class TaintCommand(_NodeCommand):
    verb: Literal["taint"] = "taint"
    key: TaintKey
    value: TaintValue = None
    effect: Effect

    @property
    def taint(self) -> str:
        """The taint as kubectl writes it: `key=value:Effect` or `key:Effect`."""
        value = f"={self.value}" if self.value is not None else ""
        return f"{self.key}{value}:{self.effect}"

    def summary(self) -> str:
        return f"Taint {self.node} {self.taint}"


class UntaintCommand(_NodeCommand):
    """Removes the taints with `key`, only those with `effect` when one is given."""

    verb: Literal["untaint"] = "untaint"
    key: TaintKey
    effect: Effect | None = None

    def summary(self) -> str:
        if self.effect is None:
            return f"Remove taint {self.key} (every effect) from {self.node}"
        return f"Remove taint {self.key}:{self.effect} from {self.node}"


class ScaleHpaCommand(MutatingCommand):
    verb: Literal["scale"] = "scale"
    namespace: Namespace
    name: ObjectName
    min_replicas: ReplicaCount
    max_replicas: ReplicaCount

    @model_validator(mode="after")
    def _bounds_in_order(self) -> ScaleHpaCommand:
        # Refused here, before any API call, rather than by the API server mid-plan.
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"--min {self.min_replicas} is more than --max {self.max_replicas}: "
                "an HPA needs 1 ≤ min ≤ max. Swap them or pick other bounds."
            )
        return self

    @property
    def target(self) -> str:
        return f"{self.namespace}/{self.name}"

    def summary(self) -> str:
        return f"Scale HPA {self.target} to min {self.min_replicas}, max {self.max_replicas}"


class BackupEtcdCommand(MutatingCommand):
    verb: Literal["backup"] = "backup"

    @property
    def target(self) -> str:
        return "etcd"

    def summary(self) -> str:
        return "Back up etcd"


class BackupPkiCommand(MutatingCommand):
    """The cluster's CA certificates and keys and sa.key/sa.pub into Vault."""

    verb: Literal["backup"] = "backup"

    @property
    def target(self) -> str:
        return "pki"

    def summary(self) -> str:
        return "Back up the cluster PKI to Vault"


def _drain_flags(delete_emptydir_data: bool, force: bool) -> str:
    said = [
        *(["delete emptyDir data"] if delete_emptydir_data else []),
        *(["force"] if force else []),
    ]
    return f"; drain with {', '.join(said)}" if said else ""


class UpgradeNodeCommand(_NodeCommand):
    verb: Literal["upgrade"] = "upgrade"
    to_version: KubernetesVersion
    # The node's drain takes these as `drain` does: pods whose data or existence is lost.
    delete_emptydir_data: bool = False
    force: bool = False

    def summary(self) -> str:
        flags = _drain_flags(self.delete_emptydir_data, self.force)
        return f"Upgrade {self.node} to {self.to_version}" + (f" ({flags[2:]})" if flags else "")


class UpgradeClusterCommand(MutatingCommand):
    verb: Literal["upgrade"] = "upgrade"
    to_version: KubernetesVersion
    max_unavailable: MaxUnavailable = 1
    delete_emptydir_data: bool = False
    force: bool = False

    @property
    def target(self) -> str:
        return "cluster"

    def summary(self) -> str:
        workers = "worker" if self.max_unavailable == 1 else "workers"
        return (
            f"Upgrade the cluster to {self.to_version} "
            f"(at most {self.max_unavailable} {workers} down at a time"
            f"{_drain_flags(self.delete_emptydir_data, self.force)})"
        )


class NewNodeTaint(BaseModel):
    """A taint the new node registers with (kubeadm's nodeRegistration.taints)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: TaintKey
    value: TaintValue = None
    effect: Effect

    @property
    def taint(self) -> str:
        value = f"={self.value}" if self.value is not None else ""
        return f"{self.key}{value}:{self.effect}"

    @classmethod
    def parse(cls, text: str) -> NewNodeTaint:
        """From `key=value:Effect` or `key:Effect`; ValueError (a ValidationError) if bad."""
        return cls.model_validate(parse_new_node_taint(text))


def parse_new_node_taint(value: object) -> object:
    """`key=value:Effect` or `key:Effect`, as /kube taint and kubectl write a taint."""
    if not isinstance(value, str):
        return value
    head, colon, effect = value.rpartition(":")
    if not colon:
        raise ValueError(
            f"'{value}' is not a taint: write key=value:Effect or key:Effect, "
            "e.g. --taint dedicated=batch:NoSchedule."
        )
    key, _, taint_value = head.partition("=")
    return {"key": key, "value": taint_value or None, "effect": effect}


class ProvisionNodeCommand(_NodeCommand):
    verb: Literal["provision"] = "provision"
    address: HostAddress
    role: Role = "worker"
    labels: NodeLabels = Field(default_factory=dict)
    taints: list[Annotated[NewNodeTaint, BeforeValidator(parse_new_node_taint)]] = Field(
        default_factory=list
    )

    def summary(self) -> str:
        role = "a worker" if self.role == "worker" else "a control-plane node"
        return f"Provision {self.node} ({self.address}) as {role}"


class RotateCertsCommand(MutatingCommand):
    """Renews control-plane certificates, on one node or (node=None) on every control plane."""

    verb: Literal["rotate"] = "rotate"
    node: NodeName | None = None

    @property
    def target(self) -> str:
        return self.node or "cluster"

    def summary(self) -> str:
        if self.node is None:
            return "Rotate control-plane certificates"
        return f"Rotate certificates on {self.node}"


# What `/kube backups` lists: the backup file's name without its extension.
_BACKUP_NAME = re.compile(r"^etcd-[a-z0-9]([a-z0-9-]*[a-z0-9])?-job[0-9]+-[0-9]{8}T[0-9]{6}Z$")


def _check_backup_name(value: str) -> str:
    if not _BACKUP_NAME.match(value):
        raise ValueError(
            f"'{value[:80]}' is not a backup name: use one `/kube backups` lists, "
            "e.g. etcd-prod-job12-20261130T020000Z"
        )
    return value


BackupName = Annotated[str, AfterValidator(_check_backup_name)]


class RestoreEtcdCommand(MutatingCommand):
    """Disaster recovery: every etcd member restored from one kept backup."""

    verb: Literal["restore"] = "restore"
    backup: BackupName

    @property
    def target(self) -> str:
        return "etcd"

    def summary(self) -> str:
        return f"Restore etcd from {self.backup}"
