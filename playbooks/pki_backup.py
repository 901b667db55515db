"""`/kube backup pki`: the cluster's CAs (`ca`, `front-proxy-ca`, `etcd/ca`, certificate and key)
and the service-account key pair, read with sudo from a control plane and kept in Vault KV v2
with check-and-set, a new version per run: what recovery and joining a new control plane need
(kubernetes.io/docs/setup/best-practices/certificates: "Single root CA"; kubeadm's
--certificate-key uploads the same files). Opt-in per cluster (`pki_in_vault`). The key bytes
live only in Vault: the thread and the audit get file names, a version and certificate digests.

Also where `backup etcd` and `backup pki` share their verb (and its policy).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from commands import BackupEtcdCommand, BackupPkiCommand, Command
from playbooks.base import (
    ClusterHandle,
    PlanError,
    Playbook,
    Step,
    StepContext,
    StepOutcome,
    StepResult,
)
from playbooks.cert_checks import PKI_DIR, certificate_holders, split_printed_files
from playbooks.etcd_backup import BackupEtcdPlaybook
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.plan import Plan, PlannedStep, StepParams
from playbooks.remote import NodeRef, Remote, RemoteCommand

# What kubeadm shares between control planes (its `certs` phase's "shared" files).
CLUSTER_PKI_FILES = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
    "sa.key",
    "sa.pub",
)
_PRINT_FILES = (
    'cd "$1" && shift && for f; do [ -f "$f" ] && printf "==> %s <==\\n" "$f" && cat -- "$f"; '
    "done; true"
)
BackupCommand = BackupEtcdCommand | BackupPkiCommand


def pki_vault_path(inventory: Inventory, cluster: str) -> str:
    return f"{inventory.certs_vault_path}/{cluster}/cluster-pki"


@dataclass(frozen=True)
class PkiSnapshot:
    cluster: str
    inventory: Inventory
    vault_configured: bool
    nodes: list[NodeView]


def decide_pki_backup(seen: PkiSnapshot) -> Plan:
    """Read from the first control plane, into Vault; refused when the cluster did not opt in
    or kubegate has no Vault. Pure."""
    if not seen.inventory.pki_in_vault:
        raise PlanError(
            f"Cluster {seen.cluster} does not keep its PKI in Vault: set `pki_in_vault: true` "
            "in its inventory first (the CA keys are then stored in Vault KV v2)."
        )
    if not seen.vault_configured:
        raise PlanError("kubegate has no Vault configured, so the cluster PKI has nowhere to go.")
    source = certificate_holders(seen.cluster, seen.inventory, seen.nodes)[0].node
    path = pki_vault_path(seen.inventory, seen.cluster)
    files = ", ".join(CLUSTER_PKI_FILES)
    return Plan(
        verb="backup",
        cluster=seen.cluster,
        target="pki",
        title=f"Back up the PKI of {seen.cluster} to Vault",
        steps=[
            PlannedStep.of(
                StoreClusterPkiParams(node=NodeRef(name=source)),
                f"Read {files} under {PKI_DIR} on {source} (sudo) and store them in Vault KV v2 "
                f"at {path} with check-and-set (a new version; contents never shown)",
                touches=[f"vault/{path}"],
            )
        ],
        facts={"control_plane": source},
        preview=[f"The cluster's CA keys and sa.key from {source} into Vault at {path}"],
        risk="medium",
        locks=["pki-backup"],
    )


class StoreClusterPkiParams(StepParams):
    step: Literal["store-cluster-pki"] = "store-cluster-pki"
    node: NodeRef


class StoredPki(StepOutcome):
    path: str
    version: int
    # Certificate (public) file -> sha256 of its PEM, for the audit; never a key's digest.
    certificates: dict[str, str] = Field(default_factory=dict)


class StoreClusterPki(Step[StoreClusterPkiParams]):
    """The shared PKI files into one KV v2 secret, written with check-and-set."""

    name: ClassVar[str] = "store-cluster-pki"
    params_model: ClassVar[type[StepParams]] = StoreClusterPkiParams

    async def run(self, ctx: StepContext) -> StepResult:
        vault, cluster = ctx.cluster.vault, ctx.cluster
        if vault is None:
            return StepResult.failed("kubegate has no Vault configured")
        remote = await Remote.open(ctx, self.params.node)
        printing = RemoteCommand.script(
            "print the cluster PKI files", _PRINT_FILES, PKI_DIR, *CLUSTER_PKI_FILES
        )
        result = await remote.run(printing)
        files = split_printed_files(result.stdout) if result.ok else {}
        missing = [name for name in CLUSTER_PKI_FILES if not files.get(name)]
        if missing:
            # Only names and the exit code: the output holds key bytes.
            return StepResult.failed(
                f"{', '.join(missing)} not readable under {PKI_DIR} on {remote.target.node} "
                f"(exit {result.exit_status}); kubegate reads them with sudo"
            )
        path = pki_vault_path(cluster.inventory, cluster.name)
        cas = await vault.version(path)
        secret = {**files, "source_node": remote.target.node, "kubegate_job": str(ctx.job_id)}
        version = await vault.write(path, secret, cas=cas)
        digests = {
            name: hashlib.sha256(text.encode()).hexdigest()
            for name, text in files.items()
            if name.endswith(".crt")
        }
        return StepResult.done(
            f"stored {len(files)} files of the cluster PKI from {remote.target.node} in Vault at "
            f"{path}, version {version}",
            StoredPki(path=path, version=version, certificates=digests),
        )


class BackupAnyPlaybook(Playbook[BackupCommand]):
    """`backup etcd` and `backup pki` share the verb (and its policy): pick by target."""

    verb: ClassVar[str] = "backup"

    def narrow(self, command: Command) -> BackupCommand:
        if isinstance(command, BackupEtcdCommand | BackupPkiCommand):
            return command
        raise TypeError(f"{self.verb} cannot plan {type(command).__name__}")

    async def plan(self, command: BackupCommand, cluster: ClusterHandle) -> Plan:
        if isinstance(command, BackupEtcdCommand):
            return await _ETCD.plan(command, cluster)
        seen = PkiSnapshot(
            cluster.name,
            cluster.inventory,
            cluster.vault is not None,
            await cluster.kube.list_nodes(),
        )
        return decide_pki_backup(seen)

    # `backup etcd` keeps its own rules for what may change between approval and run.
    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        if approved.target == "etcd":
            return _ETCD.drift(approved, fresh)
        return None

    async def facts_for_remaining(
        self, approved: Plan, cluster: ClusterHandle, *, finished: frozenset[str]
    ) -> dict[str, Any]:
        if approved.target == "etcd":
            return await _ETCD.facts_for_remaining(approved, cluster, finished=finished)
        return await super().facts_for_remaining(approved, cluster, finished=finished)


_ETCD = BackupEtcdPlaybook()
