"""Back up etcd: `etcdctl snapshot save` in a control plane's etcd container (kubeadm's static
pod; or host binaries the config names), verified with `etcdutl snapshot status`, read with sudo
(the file is root's, 0600) and copied off the host with its sha256, sealed with AES-256-GCM under
a key kept in Vault, keeping the N most recent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from commands import BackupEtcdCommand
from playbooks.backup_crypto import DEFAULT_KEY_PATH, backup_key, encrypt_file
from playbooks.backup_files import SEALED, checksum_file, fetch_root_file, file_sha256, prune, stamp
from playbooks.backup_files import SNAPSHOT_GLOB as SNAPSHOT_GLOB  # for the freshness watch
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
from playbooks.etcd_tools import etcd_tools
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.plan import Plan, PlannedStep, StepParams
from playbooks.private_files import write_private
from playbooks.remote import NodeRef, Remote, RemoteCommand, running_file, wait_for_leftover
from playbooks.ssh import CommandResult, SshTarget

NO_VAULT = (
    "Backups are sealed with a key kept in Vault, and kubegate has no Vault configured: "
    "set `vault` in kubegate's config."
)


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


def where_etcd_tools(inventory: Inventory) -> str:
    etcd = inventory.etcd
    return "host etcdctl/etcdutl" if etcd.etcdctl and etcd.etcdutl else "in the etcd container"


def failed(result: CommandResult, doing: str) -> StepResult:
    return StepResult(
        ok=False,
        summary=f"{doing} failed on {result.node} (exit {result.exit_status})",
        output=result.tail(),
    )


class SaveSnapshotParams(StepParams):
    """Nothing to fix at planning time: the step takes the first Ready control plane it finds
    when it runs, as etcd is the same cluster-wide on any of them."""

    step: Literal["snapshot"] = "snapshot"


class SavedSnapshot(StepOutcome):
    node: str
    remote: str  # the snapshot's path on that node


class SaveSnapshot(Step[SaveSnapshotParams]):
    """`etcdctl snapshot save` with a running file on the node; where it is being taken is
    checkpointed first, so a resume waits there for a save still running and keeps a snapshot
    that was finished, rather than take a second one beside it."""

    name: ClassVar[str] = "snapshot"
    params_model: ClassVar[type[StepParams]] = SaveSnapshotParams
    stoppable: ClassVar[bool] = True  # a half-written snapshot file harms nothing
    undoes_partial: ClassVar[bool] = True  # what a save cut short wrote is removed too

    async def run(self, ctx: StepContext) -> StepResult:
        target = await control_plane_target(ctx.cluster)
        ssh = await ctx.cluster.ssh()
        tools = await etcd_tools(ssh, target, ctx.cluster.inventory.etcd)
        name = f"etcd-{ctx.cluster.name}-job{ctx.job_id}-{stamp()}"
        remote = f"{tools.snapshot_dir}/kubegate-{name}.db"
        cut_short = self._started(ctx)
        if cut_short is not None:  # an earlier try never finished: what it wrote goes
            await _remove_snapshot(ssh, target, cut_short.remote)
        if tools.container is None:
            made = await ssh.run(target, ["mkdir", "-p", tools.snapshot_dir])
            if not made.ok:
                return failed(made, f"creating {tools.snapshot_dir}")
        taking = SavedSnapshot(node=target.node, remote=remote)
        ctx.checkpoint(taking.model_dump(mode="json"))
        saving = RemoteCommand(
            tuple(tools.etcdctl("snapshot", "save", remote)), f"etcdctl snapshot save {remote}"
        )
        node = Remote(ssh, target, ctx.cluster.inventory.ssh.command_timeout)
        saved = await node.run(
            saving, running=running_file(ctx.job_id, self.name), on_output=ctx.progress
        )
        if not saved.ok:
            return failed(saved, f"etcdctl snapshot save (in {tools.where})")
        return StepResult.done(
            f"snapshot saved on {target.node} by etcdctl in {tools.where}: {remote}",
            taking,
            output=saved.tail(5),
        )

    @staticmethod
    def _started(ctx: StepContext) -> SavedSnapshot | None:
        """The snapshot an earlier run of this step began (its checkpoint), if any."""
        return SavedSnapshot.model_validate(ctx.partial) if "remote" in ctx.partial else None

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        started = self._started(ctx)
        if started is not None:
            await wait_for_leftover(ctx, NodeRef(name=started.node), self.name)

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        """The snapshot begun before is kept when its file is there: etcdctl writes
        `<file>.part` and renames it only once the snapshot is whole and synced
        (etcd-io/etcd client/v3/snapshot/v3_snapshot.go), and the next step verifies it."""
        started = self._started(ctx)
        if started is None:
            return None
        node = await Remote.open(ctx, NodeRef(name=started.node))
        if await node.answer(RemoteCommand.of("test", "-s", started.remote)) is None:
            return None
        return StepResult.done(
            f"the snapshot begun before the restart was finished on {started.node}: "
            f"{started.remote}",
            started,
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        """The snapshot holds every Secret of the cluster: an aborted backup leaves no copy of
        it behind, neither on the node nor half-fetched here. (Once copied off and sealed, the
        copy step has removed the node's file: nothing is left to undo.)"""
        if "remote" not in result.data:  # stopped before it began a save
            return None
        saved = result.outcome(SavedSnapshot)
        if not result.ok:  # stopped midway: a save still running there ends first
            await wait_for_leftover(ctx, NodeRef(name=saved.node), self.name)
        await asyncio.to_thread(plain_copy(ctx.cluster.backup_dir, saved.remote).unlink, True)
        node = await Remote.open(ctx, NodeRef(name=saved.node))
        there = RemoteCommand.script(
            "is the snapshot still there", '[ -e "$1" ] || [ -e "$1.part" ]', saved.remote
        )
        if not (await node.run(there)).ok:
            return None
        gone = await _remove_snapshot(node.ssh, node.target, saved.remote)
        if not gone.ok:
            return (
                f"could not remove the snapshot {saved.remote} on {saved.node} "
                f"(exit {gone.exit_status}): remove it by hand, it holds every Secret"
            )
        return f"removed the snapshot {saved.remote} from {saved.node}"


async def _remove_snapshot(ssh: RemoteShell, target: SshTarget, remote: str) -> CommandResult:
    # etcdctl writes `<file>.part` and renames it once whole; a killed save leaves the part.
    return await ssh.run(target, ["rm", "-f", "--", remote, remote + ".part"])


def plain_copy(directory: Path, remote: str) -> Path:
    """Where the copy step fetches the node's snapshot to, plain only until it is sealed."""
    name = Path(remote).name.removeprefix("kubegate-").removesuffix(".db")
    return directory / f".{name}.db.partial"


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
        tools = await etcd_tools(ssh, target, ctx.cluster.inventory.etcd)
        # etcd 3.6 removed `etcdctl snapshot status`; etcdutl reads the file (3.5 and 3.6).
        status = await ssh.run(
            target, tools.etcdutl("snapshot", "status", saved.remote, "-w", "json")
        )
        if not status.ok:
            return failed(status, "etcdutl snapshot status")
        summed = await ssh.run(target, ["sha256sum", saved.remote])
        if not summed.ok:
            return failed(summed, "sha256sum")
        try:
            status_json = json.loads(status.stdout)
        except json.JSONDecodeError:
            return StepResult.failed(
                "etcdutl snapshot status did not answer JSON", output=status.tail()
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
    sha256: str  # of the plain snapshot, as etcd wrote it
    key_vault_path: str  # the Vault KV secret holding the key: its path and version, never it
    key_version: int
    removed: list[str]  # older copies pruned to keep N


class CopyOffHost(Step[CopyOffHostParams]):
    name: ClassVar[str] = "copy-off-host"
    params_model: ClassVar[type[StepParams]] = CopyOffHostParams

    async def run(self, ctx: StepContext) -> StepResult:
        saved = ctx.outcome(SaveSnapshot.name, SavedSnapshot)
        verified = ctx.outcome(VerifySnapshot.name, VerifiedSnapshot)
        if ctx.cluster.vault is None:
            return StepResult.failed(NO_VAULT)
        key, key_version = await backup_key(ctx.cluster.vault)
        target = await ctx.cluster.ssh_target(saved.node)
        ssh = await ctx.cluster.ssh()
        directory = ctx.cluster.backup_dir
        # Only kubegate's own user may list the backups, let alone read them.
        await asyncio.to_thread(directory.mkdir, mode=0o700, parents=True, exist_ok=True)
        name = Path(saved.remote).name.removeprefix("kubegate-").removesuffix(".db")
        plain = plain_copy(directory, saved.remote)  # 0600 throughout
        sealed = directory / (name + SEALED)
        try:
            await fetch_root_file(ssh, target, saved.remote, plain)
            sha256 = await asyncio.to_thread(file_sha256, plain)
            if sha256 != verified.sha256:
                return StepResult.failed(
                    f"the copy's sha256 {sha256[:12]}… differs from the node's "
                    f"{verified.sha256[:12]}…"
                )
            await asyncio.to_thread(
                encrypt_file,
                plain,
                sealed,
                key,
                key_path=DEFAULT_KEY_PATH,
                key_version=key_version,
            )
        finally:
            await asyncio.to_thread(plain.unlink, missing_ok=True)
        checksum = f"{sha256}  {name}.db\n".encode()
        await asyncio.to_thread(write_private, checksum_file(sealed), checksum)
        await ssh.run(target, ["rm", "-f", saved.remote])
        removed = await asyncio.to_thread(prune, directory, ctx.cluster.backup_keep)
        kept = f"; removed {len(removed)} older" if removed else ""
        return StepResult.done(
            f"copied to {sealed}, sealed with AES-256-GCM (Vault {DEFAULT_KEY_PATH} "
            f"v{key_version}); snapshot sha256 {sha256}{kept}",
            CopiedSnapshot(
                file=str(sealed),
                sha256=sha256,
                key_vault_path=DEFAULT_KEY_PATH,
                key_version=key_version,
                removed=removed,
            ),
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
                f"etcdctl snapshot save on {target.node} ({seen.inventory.etcd.endpoint}, "
                f"{where_etcd_tools(seen.inventory)})",
                touches=[f"node/{target.node}"],
            ),
            PlannedStep.of(VerifySnapshotParams(), "Verify it (etcdutl snapshot status, sha256)"),
            PlannedStep.of(
                CopyOffHostParams(),
                f"Read it with sudo, copy it off the host, seal it (AES-256-GCM, key in Vault) "
                f"into {seen.backup_dir} (keep {seen.backup_keep})",
            ),
        ],
        facts={"control_plane": target.node},
        preview=[
            f"Snapshot of etcd on {target.node}, copied to kubegate's backup directory over SFTP "
            "and encrypted at rest"
        ],
        risk="low",
        locks=["etcd-backup"],
    )


class BackupEtcdPlaybook(Playbook[BackupEtcdCommand]):
    verb: ClassVar[str] = "backup"
    command_type = BackupEtcdCommand

    async def plan(self, command: BackupEtcdCommand, cluster: ClusterHandle) -> Plan:
        return decide_backup(await observe_backup(cluster))
