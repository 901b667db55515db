"""The steps of `restore etcd`: the disaster-recovery runbook for a kubeadm cluster with
stacked etcd (kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd/#restoring-an-
etcd-cluster; etcd.io/docs/v3.6/op-guide/recovery): every API server stopped, the
snapshot restored on every member into a fresh data dir, every member started on it, quorum and
revision checked, the API servers started again. Steps reach the hosts by the addresses in
their parameters: the Kubernetes API is down for most of the job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Literal

from playbooks.backup_crypto import decrypt_file, opening_key, read_header
from playbooks.backup_files import file_sha256, find_backup
from playbooks.base import ClusterHandle, RemoteShell, Step, StepContext, StepOutcome, StepResult
from playbooks.errors import OperationError
from playbooks.etcd_members import MemberPlan, initial_cluster
from playbooks.etcd_tools import etcd_tools
from playbooks.plan import StepParams
from playbooks.remote import NodeRef, Remote, RemoteCommand, running_file, wait_for_leftover
from playbooks.ssh import CommandResult, SshTarget

MANIFESTS = "/etc/kubernetes/manifests"
SET_ASIDE = "/etc/kubernetes/kubegate-restore"  # manifests out of the kubelet's sight
POLL_S = 0.5
STOP_TIMEOUT_S = 120.0
QUORUM_TIMEOUT_S = 180.0
NODES_READY_TIMEOUT_S = 300.0
COMMAND_TIMEOUT_S = 300.0


class RestoreError(OperationError):
    pass


def target_of(cluster: ClusterHandle, member: MemberPlan) -> SshTarget:
    return cluster.inventory.target_for_address(member.node, member.address)


def staged_path(member: MemberPlan, backup: str) -> str:
    """Where the snapshot waits on a member's host: in the data dir's parent volume, the one
    host directory the etcd container mounts (kubeadm's etcd-data hostPath)."""
    return f"{member.data_dir}/kubegate-restore-{backup}.db"


def fresh_dir(member: MemberPlan, job_id: int) -> str:
    return f"{member.data_dir}/kubegate-restore-job{job_id}"


def plain_copy(ctx: StepContext) -> Path:
    """Where the backup is decrypted here before it is staged: plain only until then."""
    return ctx.cluster.backup_dir / f".restore-job{ctx.job_id}.db.partial"


async def must(
    ssh: RemoteShell,
    target: SshTarget,
    argv: list[str],
    doing: str,
    *,
    running: str | None = None,
) -> CommandResult:
    """Run `argv` (with `running`, under that running file); a failure ends the step."""
    remote = Remote(ssh, target, timeout=COMMAND_TIMEOUT_S)
    result = await remote.run(RemoteCommand.of(*argv), running=running)
    if not result.ok:
        raise RestoreError(
            f"{doing} on {target.node} failed (exit {result.exit_status}): {result.tail(5)}"
        )
    return result


async def wait_until(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RestoreError(f"{what} did not happen within {timeout:.0f} s")
        await asyncio.sleep(POLL_S)


async def container_running(ssh: RemoteShell, target: SshTarget, name: str) -> bool:
    listed = await ssh.run(target, ["crictl", "ps", "--name", f"^{name}$", "-q"], timeout=30)
    return listed.ok and bool(listed.stdout.split())


async def move_manifest(ssh: RemoteShell, target: SshTarget, pod: str, *, out: bool) -> str:
    """Move `pod`'s manifest out of (or back into) the kubelet's directory; a no-op when it is
    already where it should be, so a retried step picks up where it stopped."""
    inside, aside = f"{MANIFESTS}/{pod}.yaml", f"{SET_ASIDE}/{pod}.yaml"
    source, destination = (inside, aside) if out else (aside, inside)
    present = await ssh.run(target, ["test", "-e", source])
    if not present.ok:
        return f"{pod}.yaml already {'out' if out else 'back'} on {target.node}"
    await must(ssh, target, ["mkdir", "-p", "-m", "0700", SET_ASIDE], "mkdir")
    await must(ssh, target, ["mv", source, destination], f"moving {pod}.yaml")
    return f"{pod}.yaml {'moved out' if out else 'back'} on {target.node}"


class StageParams(StepParams):
    step: Literal["stage-snapshot"] = "stage-snapshot"
    members: list[MemberPlan]
    backup: str
    sha256: str


class Staged(StepOutcome):
    sha256: str
    key_version: int


class StageSnapshot(Step[StageParams]):
    """Decrypt the backup here, check its sha256, and put it on every member's host (root's,
    0600)."""

    name: ClassVar[str] = "stage-snapshot"
    params_model: ClassVar[type[StepParams]] = StageParams
    undoes_partial: ClassVar[bool] = True  # members staged before it stopped are cleared too

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        """The staged snapshots hold every Secret of the cluster: an aborted restore does not
        leave them on the hosts either (nor a plain copy here)."""
        await asyncio.to_thread(plain_copy(ctx).unlink, True)
        await remove_staged(ctx, self.params.members, self.params.backup)
        return "removed the staged snapshots from " + ", ".join(m.node for m in self.params.members)

    async def run(self, ctx: StepContext) -> StepResult:
        params = self.params
        sealed = find_backup(ctx.cluster.backup_dir, params.backup)
        if sealed is None or ctx.cluster.vault is None:
            return StepResult.failed(f"backup {params.backup} or Vault is no longer there")
        header = await asyncio.to_thread(read_header, sealed)
        # The key version the backup names: the current one may have been rotated since.
        key, version = await opening_key(ctx.cluster.vault, header), int(header["key_version"])
        plain = plain_copy(ctx)
        try:
            await asyncio.to_thread(decrypt_file, sealed, plain, key)
            sha256 = await asyncio.to_thread(file_sha256, plain)
            if sha256 != params.sha256:
                return StepResult.failed(
                    f"the decrypted backup's sha256 {sha256[:12]}… is not the recorded "
                    f"{params.sha256[:12]}…"
                )
            ssh = await ctx.cluster.ssh()
            for member in params.members:
                await put_as_root(ssh, target_of(ctx.cluster, member), plain, member, params)
                await ctx.progress(f"{member.node}: {staged_path(member, params.backup)}\n")
        finally:
            await asyncio.to_thread(plain.unlink, missing_ok=True)
        return StepResult.done(
            f"snapshot {params.backup} (sha256 {sha256[:12]}…, Vault key v{version}) staged on "
            + ", ".join(m.node for m in params.members),
            Staged(sha256=sha256, key_version=version),
        )


async def remove_staged(ctx: StepContext, members: list[MemberPlan], backup: str) -> list[str]:
    """Take the staged snapshot off every member's host; where each one was."""
    ssh = await ctx.cluster.ssh()
    removed = []
    for member in members:
        staged = staged_path(member, backup)
        await must(ssh, target_of(ctx.cluster, member), ["rm", "-f", "--", staged], "rm")
        removed.append(f"{member.node}:{staged}")
    return removed


async def put_as_root(
    ssh: RemoteShell, target: SshTarget, plain: Path, member: MemberPlan, params: StageParams
) -> None:
    login = replace(target, sudo=False)
    made = await must(ssh, login, ["mktemp", "-d", "-t", "kubegate-restore.XXXXXXXX"], "mktemp")
    private_dir = made.stdout.strip()
    try:
        upload = f"{private_dir}/snapshot.db"
        await ssh.sftp_put(login, str(plain), upload)
        staged = staged_path(member, params.backup)
        install = ["install", "-m", "0600", "-o", "root", "-g", "root", upload, staged]
        await must(ssh, target, install, "placing the snapshot")
        summed = await must(ssh, target, ["sha256sum", staged], "sha256sum")
        if summed.stdout.split()[0] != params.sha256:
            raise RestoreError(f"the snapshot on {target.node} does not match its sha256")
    finally:
        await ssh.run(login, ["rm", "-rf", "--", private_dir])


class StopApiServersParams(StepParams):
    step: Literal["stop-apiservers"] = "stop-apiservers"
    members: list[MemberPlan]


class Moved(StepOutcome):
    moved: list[str]


class StopApiServers(Step[StopApiServersParams]):
    name: ClassVar[str] = "stop-apiservers"
    params_model: ClassVar[type[StepParams]] = StopApiServersParams

    async def run(self, ctx: StepContext) -> StepResult:
        ssh = await ctx.cluster.ssh()
        said = []
        for member in self.params.members:
            target = target_of(ctx.cluster, member)
            said.append(await move_manifest(ssh, target, "kube-apiserver", out=True))
            await ctx.progress(said[-1] + "\n")
        for member in self.params.members:
            target = target_of(ctx.cluster, member)

            async def stopped(target: SshTarget = target) -> bool:
                return not await container_running(ssh, target, "kube-apiserver")

            await wait_until(
                stopped, timeout=STOP_TIMEOUT_S, what=f"{member.node}'s API server to stop"
            )
        return StepResult.done(
            "every API server stopped (kube-apiserver.yaml out of the manifests on "
            + ", ".join(m.node for m in self.params.members)
            + ")",
            Moved(moved=said),
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        ssh = await ctx.cluster.ssh()
        for member in self.params.members:
            await move_manifest(ssh, target_of(ctx.cluster, member), "kube-apiserver", out=False)
        return "kube-apiserver.yaml back on " + ", ".join(m.node for m in self.params.members)


class RestoreMembersParams(StepParams):
    step: Literal["restore-members"] = "restore-members"
    members: list[MemberPlan]
    backup: str


class Restored(StepOutcome):
    token: str
    initial_cluster: str


class RestoreMembers(Step[RestoreMembersParams]):
    """`etcdutl snapshot restore` per member into a fresh data dir beside the live one."""

    name: ClassVar[str] = "restore-members"
    params_model: ClassVar[type[StepParams]] = RestoreMembersParams

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        for member in self.params.members:
            await wait_for_leftover(
                ctx, NodeRef(name=member.node, address=member.address), self.name
            )

    undoes_partial: ClassVar[bool] = True  # a restore cut short leaves its data dir too

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        """Restored data never put in place goes (it holds every Secret); data a swap put in
        place and its undo set aside is the swap's to keep."""
        await self.wait_for_leftovers(ctx)
        ssh = await ctx.cluster.ssh()
        removed = []
        for member in self.params.members:
            target, fresh = target_of(ctx.cluster, member), fresh_dir(member, ctx.job_id)
            if (await ssh.run(target, ["test", "-e", fresh])).ok:
                await must(ssh, target, ["rm", "-rf", "--", fresh], "removing restored data")
                removed.append(member.node)
        if not removed:
            return None
        return "removed the restored data not put in place on " + ", ".join(removed)

    async def run(self, ctx: StepContext) -> StepResult:
        ssh = await ctx.cluster.ssh()
        members = self.params.members
        cluster = initial_cluster(members)
        # A new cluster token: the restored members form a new cluster, which the old
        # members' data (kept aside) can never be mistaken for.
        token = f"kubegate-restore-job{ctx.job_id}"
        for member in members:
            target = target_of(ctx.cluster, member)
            tools = await etcd_tools(ssh, target, ctx.cluster.inventory.etcd)
            fresh = fresh_dir(member, ctx.job_id)
            await must(ssh, target, ["rm", "-rf", "--", fresh], "clearing an earlier try")
            restore = tools.etcdutl(
                "snapshot",
                "restore",
                staged_path(member, self.params.backup),
                f"--data-dir={fresh}",
                f"--name={member.name}",
                f"--initial-cluster={cluster}",
                f"--initial-cluster-token={token}",
                f"--initial-advertise-peer-urls={member.peer_url}",
            )
            await ctx.progress(f"{member.node}: {' '.join(restore)}\n")
            # Under a running file: a restore still writing when kubegate restarted is waited
            # for, never cleared away under it by this step's next run.
            running = running_file(ctx.job_id, self.name)
            await must(ssh, target, restore, "etcdutl snapshot restore", running=running)
        return StepResult.done(
            f"restored into a fresh data dir on every member (token {token}, "
            f"--initial-cluster={cluster})",
            Restored(token=token, initial_cluster=cluster),
        )
