"""Back up etcd: `etcdctl snapshot save` on a control-plane node, verified with `snapshot
status`, copied off the host over SFTP with its sha256, keeping the N most recent copies.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar, Literal

from commands import BackupEtcdCommand
from playbooks.base import (
    ClusterHandle,
    PlanError,
    Playbook,
    RemoteShell,
    Step,
    StepContext,
    StepOutcome,
    StepResult,
)
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.plan import Plan, PlannedStep, StepParams
from playbooks.private_files import write_private
from playbooks.ssh import CommandResult, SshError, SshTarget

SNAPSHOT_GLOB = "etcd-*.db"


def etcdctl(ctx_cluster: ClusterHandle, *args: str) -> list[str]:
    etcd = ctx_cluster.inventory.etcd
    return [
        "env",
        "ETCDCTL_API=3",
        "etcdctl",
        f"--endpoints={etcd.endpoint}",
        f"--cacert={etcd.ca}",
        f"--cert={etcd.cert}",
        f"--key={etcd.key}",
        *args,
    ]


def snapshot_source(inventory: Inventory, nodes: list[NodeView]) -> SshTarget | None:
    """The first Ready control-plane node (by name) kubegate can reach: where etcd answers on
    127.0.0.1. Pure."""
    for node in sorted(nodes, key=lambda n: n.name):
        if inventory.is_control_plane(node) and node.ready:
            target = inventory.target(node)
            if target is not None:
                return target
    return None


def no_snapshot_source(cluster: str) -> PlanError:
    return PlanError(
        f"No Ready control-plane node in cluster {cluster} to take an etcd snapshot on."
    )


async def control_plane_target(cluster: ClusterHandle) -> SshTarget:
    target = snapshot_source(cluster.inventory, await cluster.kube.list_nodes())
    if target is None:
        raise no_snapshot_source(cluster.name)
    return target


def failed(result: CommandResult, doing: str) -> StepResult:
    return StepResult(
        ok=False,
        summary=f"{doing} failed on {result.node} (exit {result.exit_status})",
        output=result.tail(),
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prune(directory: Path, keep: int) -> list[str]:
    """Delete all but the `keep` newest snapshots (and their .sha256 files); the names removed."""
    snapshots = sorted(directory.glob(SNAPSHOT_GLOB), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in snapshots[keep:]:
        old.unlink()
        old.with_suffix(".db.sha256").unlink(missing_ok=True)
        removed.append(old.name)
    return removed


async def fetch_root_file(ssh: RemoteShell, target: SshTarget, remote: str, local: Path) -> None:
    """Copy a root-owned 0600 file off the host: sudo hands the login user a private copy (0600,
    in a 0700 `mktemp -d` directory only it can enter), SFTP fetches it, and the copy is removed
    whatever happens. SFTP itself runs as the login user and could not read root's file."""
    login = replace(target, sudo=False)
    made = await ssh.run(login, ["mktemp", "-d", "-t", "kubegate-backup.XXXXXXXX"])
    if not made.ok:
        raise SshError(f"mktemp on {target.where} failed: {made.tail(3)}", node=target.node)
    private_dir = made.stdout.strip()
    copy = f"{private_dir}/{Path(remote).name}"
    try:
        handed = await ssh.run(
            replace(target, sudo=True),
            ["install", "-m", "0600", "-o", target.user, remote, copy],
        )
        if not handed.ok:
            raise SshError(
                f"cannot read {remote} as root on {target.where}: {handed.tail(3)}",
                node=target.node,
            )
        await ssh.sftp_get(login, copy, str(local))
    finally:
        await ssh.run(login, ["rm", "-rf", "--", private_dir])


class SaveSnapshotParams(StepParams):
    """Nothing to fix at planning time: the step takes the first Ready control plane it finds
    when it runs, as etcd is the same cluster-wide on any of them."""

    step: Literal["snapshot"] = "snapshot"


class SavedSnapshot(StepOutcome):
    node: str
    remote: str  # the snapshot's path on that node


class SaveSnapshot(Step[SaveSnapshotParams]):
    name: ClassVar[str] = "snapshot"
    params_model: ClassVar[type[StepParams]] = SaveSnapshotParams
    stoppable: ClassVar[bool] = True  # a half-written snapshot file harms nothing

    async def run(self, ctx: StepContext) -> StepResult:
        target = await control_plane_target(ctx.cluster)
        ssh = await ctx.cluster.ssh()
        remote_dir = ctx.cluster.inventory.etcd.snapshot_dir
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        remote = f"{remote_dir}/etcd-{ctx.cluster.name}-job{ctx.job_id}-{stamp}.db"
        made = await ssh.run(target, ["mkdir", "-p", remote_dir])
        if not made.ok:
            return failed(made, f"creating {remote_dir}")
        saved = await ssh.run(
            target, etcdctl(ctx.cluster, "snapshot", "save", remote), on_output=ctx.progress
        )
        if not saved.ok:
            return failed(saved, "etcdctl snapshot save")
        return StepResult.done(
            f"snapshot saved on {target.node}: {remote}",
            SavedSnapshot(node=target.node, remote=remote),
            output=saved.tail(5),
        )


class VerifySnapshotParams(StepParams):
    step: Literal["verify"] = "verify"


class VerifiedSnapshot(StepOutcome):
    revision: int | None
    keys: int | None
    size: int | None
    sha256: str


class VerifySnapshot(Step[VerifySnapshotParams]):
    name: ClassVar[str] = "verify"
    params_model: ClassVar[type[StepParams]] = VerifySnapshotParams

    async def run(self, ctx: StepContext) -> StepResult:
        saved = ctx.outcome(SaveSnapshot.name, SavedSnapshot)
        target = await ctx.cluster.ssh_target(saved.node)
        ssh = await ctx.cluster.ssh()
        status = await ssh.run(
            target, etcdctl(ctx.cluster, "snapshot", "status", saved.remote, "-w", "json")
        )
        if not status.ok:
            return failed(status, "etcdctl snapshot status")
        summed = await ssh.run(target, ["sha256sum", saved.remote])
        if not summed.ok:
            return failed(summed, "sha256sum")
        try:
            status_json = json.loads(status.stdout)
        except json.JSONDecodeError:
            return StepResult.failed(
                "etcdctl snapshot status did not answer JSON", output=status.tail()
            )
        verified = VerifiedSnapshot(
            revision=status_json.get("revision"),
            keys=status_json.get("totalKey"),
            size=status_json.get("totalSize"),
            sha256=summed.stdout.split()[0],
        )
        return StepResult.done(
            f"revision {verified.revision}, {verified.keys} keys, {verified.size} bytes, "
            f"sha256 {verified.sha256[:12]}…",
            verified,
        )


class CopyOffHostParams(StepParams):
    step: Literal["copy-off-host"] = "copy-off-host"


class CopiedSnapshot(StepOutcome):
    file: str
    sha256: str
    removed: list[str]  # older copies pruned to keep N


class CopyOffHost(Step[CopyOffHostParams]):
    name: ClassVar[str] = "copy-off-host"
    params_model: ClassVar[type[StepParams]] = CopyOffHostParams

    async def run(self, ctx: StepContext) -> StepResult:
        saved = ctx.outcome(SaveSnapshot.name, SavedSnapshot)
        verified = ctx.outcome(VerifySnapshot.name, VerifiedSnapshot)
        target = await ctx.cluster.ssh_target(saved.node)
        ssh = await ctx.cluster.ssh()
        directory = ctx.cluster.backup_dir
        # Only kubegate's own user may list the snapshots, let alone read them.
        await asyncio.to_thread(directory.mkdir, mode=0o700, parents=True, exist_ok=True)
        local = directory / Path(saved.remote).name
        await fetch_root_file(ssh, target, saved.remote, local)
        sha256 = await asyncio.to_thread(file_sha256, local)
        if sha256 != verified.sha256:
            await asyncio.to_thread(local.unlink, missing_ok=True)
            return StepResult.failed(
                f"the copy's sha256 {sha256[:12]}… differs from the node's {verified.sha256[:12]}…"
            )
        checksum = f"{sha256}  {local.name}\n".encode()
        await asyncio.to_thread(write_private, local.with_suffix(".db.sha256"), checksum)
        await ssh.run(target, ["rm", "-f", saved.remote])
        removed = await asyncio.to_thread(prune, directory, ctx.cluster.backup_keep)
        kept = f"; removed {len(removed)} older" if removed else ""
        return StepResult.done(
            f"copied to {local} (sha256 {sha256}){kept}",
            CopiedSnapshot(file=str(local), sha256=sha256, removed=removed),
        )


@dataclass(frozen=True)
class BackupSnapshot:
    """What a backup is decided from: the nodes as the API lists them, and where copies go."""

    cluster: str
    inventory: Inventory
    nodes: list[NodeView]
    backup_dir: Path
    backup_keep: int


async def observe_backup(cluster: ClusterHandle) -> BackupSnapshot:
    nodes = await cluster.kube.list_nodes()
    return BackupSnapshot(
        cluster.name, cluster.inventory, nodes, cluster.backup_dir, cluster.backup_keep
    )


def decide_backup(seen: BackupSnapshot) -> Plan:
    """The backup plan on the first Ready control plane, or a PlanError when there is none. Pure."""
    target = snapshot_source(seen.inventory, seen.nodes)
    if target is None:
        raise no_snapshot_source(seen.cluster)
    return Plan(
        verb=BackupEtcdPlaybook.verb,
        cluster=seen.cluster,
        target="etcd",
        title=f"Back up etcd of {seen.cluster}",
        steps=[
            PlannedStep.of(
                SaveSnapshotParams(),
                f"etcdctl snapshot save on {target.node} ({seen.inventory.etcd.endpoint})",
                touches=[f"node/{target.node}"],
            ),
            PlannedStep.of(VerifySnapshotParams(), "Verify it (etcdctl snapshot status, sha256)"),
            PlannedStep.of(
                CopyOffHostParams(),
                f"Copy it off the host to {seen.backup_dir} (keep {seen.backup_keep})",
            ),
        ],
        facts={"control_plane": target.node},
        preview=[
            f"Snapshot of etcd on {target.node}, copied to kubegate's backup directory over SFTP"
        ],
        risk="low",
        locks=["etcd-backup"],
    )


class BackupEtcdPlaybook(Playbook[BackupEtcdCommand]):
    verb: ClassVar[str] = "backup"
    command_type = BackupEtcdCommand

    async def plan(self, command: BackupEtcdCommand, cluster: ClusterHandle) -> Plan:
        return decide_backup(await observe_backup(cluster))
