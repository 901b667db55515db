"""`/kube restore etcd <backup>`: observe the control planes (each member's etcd manifest, every
member's health, the kept backup), then decide the disaster-recovery plan. Refused before
anything changes when a member is down, a host cannot be read, or the backup is missing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import ClassVar

from commands import RestoreEtcdCommand
from playbooks.backup_files import checksum_file, find_backup
from playbooks.base import ClusterHandle, PlanError, Playbook
from playbooks.etcd_members import (
    MemberHealth,
    MemberPlan,
    initial_cluster,
    member_from_manifest,
    member_health,
    read_manifest,
)
from playbooks.etcd_restore_return import (
    CleanUpParams,
    StartApiServersParams,
    StartEtcdParams,
    SwapDataParams,
)
from playbooks.etcd_restore_steps import (
    RestoreMembersParams,
    StageParams,
    StopApiServersParams,
)
from playbooks.plan import Plan, PlannedStep
from playbooks.ssh import SshError


@dataclass(frozen=True)
class RestoreSnapshot:
    """What a restore is decided from."""

    cluster: str
    backup: str
    backup_sha256: str | None  # None: no such backup kept
    backup_taken: float
    has_vault: bool
    members: list[MemberPlan]
    unreadable: list[str]  # control planes whose etcd manifest could not be read, and why
    health: list[MemberHealth] | None  # None: no member answered


async def observe_restore(cluster: ClusterHandle, backup: str) -> RestoreSnapshot:
    sealed = find_backup(cluster.backup_dir, backup)
    sha256, taken = None, 0.0
    if sealed is not None:
        text = await asyncio.to_thread(checksum_file(sealed).read_text)
        sha256, taken = text.split()[0], sealed.stat().st_mtime
    nodes = await cluster.kube.list_nodes()
    ssh = await cluster.ssh()
    members, unreadable, targets = [], [], []
    for node in cluster.inventory.control_plane_order(nodes):
        target = cluster.inventory.target(node)
        if target is None:
            unreadable.append(f"{node.name}: no address to reach it")
            continue
        try:
            member = member_from_manifest(node.name, target.host, await read_manifest(ssh, target))
        except SshError as error:
            unreadable.append(f"{node.name}: {error}")
            continue
        if member is None:
            unreadable.append(f"{node.name}: its etcd.yaml names no --name/peer URL/--data-dir")
            continue
        members.append(member)
        targets.append(target)
    health = await member_health(ssh, targets, cluster.inventory.etcd) if targets else None
    return RestoreSnapshot(
        cluster.name, backup, sha256, taken, cluster.vault is not None, members, unreadable, health
    )


def refusal(seen: RestoreSnapshot) -> str | None:
    """Why this restore must not start, in the operator's words; None when it may. Pure."""
    if seen.backup_sha256 is None:
        return f"There is no backup `{seen.backup}` of cluster {seen.cluster}: `/kube backups` lists them."
    if not seen.has_vault:
        return "The backup's key is in Vault, and kubegate has no Vault configured."
    if seen.unreadable or not seen.members:
        return "kubegate cannot read every control plane's etcd manifest: " + (
            "; ".join(seen.unreadable) or "no control planes found"
        )
    if seen.health is None:
        return (
            "No etcd member answers, so kubegate cannot run etcdutl in an etcd container. "
            "Restore by hand with etcdutl on the hosts (kubegate backup decrypt gives the snapshot)."
        )
    down = [h for h in seen.health if not h.healthy]
    if down or len(seen.health) != len(seen.members):
        total, healthy = len(seen.health), sum(h.healthy for h in seen.health)
        names = ", ".join(f"{h.name} ({h.error or 'unhealthy'})" for h in down) or "(none)"
        return (
            f"Refused before anything changed: etcd member(s) {names} are down. A restore stops "
            f"every member and starts them all from the backup on every control plane's host, "
            f"so each must be reachable and healthy first. etcd needs a quorum, a majority of "
            f"its {total} members ({total // 2 + 1}), to serve: {healthy} of {total} healthy "
            + (
                "still is a quorum, so the cluster is serving and does not need a restore. "
                if healthy > total // 2
                else "is no quorum. "
            )
            + "Bring the member back (or remove it with `etcdctl member remove`), then ask again."
        )
    return None


def restore_steps(seen: RestoreSnapshot) -> list[PlannedStep]:
    """The runbook's steps with what each is fixed to: members, backup, sha256. Pure."""
    assert seen.backup_sha256 is not None
    members, backup = seen.members, seen.backup
    nodes = ", ".join(m.node for m in members)
    return [
        PlannedStep.of(
            StageParams(members=members, backup=backup, sha256=seen.backup_sha256),
            f"Decrypt {backup} (key from Vault), check its sha256 "
            f"{seen.backup_sha256[:12]}…, put it on {nodes}",
        ),
        PlannedStep.of(
            StopApiServersParams(members=members),
            f"Stop every API server: kube-apiserver.yaml out of the manifests on {nodes}",
            touches=[f"node/{m.node}" for m in members],
        ),
        PlannedStep.of(
            RestoreMembersParams(members=members, backup=backup),
            "etcdutl snapshot restore on every member into a fresh data dir: "
            + "; ".join(
                f"--name={m.name} --initial-advertise-peer-urls={m.peer_url}" for m in members
            )
            + f"; --initial-cluster={initial_cluster(members)}",
        ),
        PlannedStep.of(
            SwapDataParams(members=members),
            "Stop every etcd member (etcd.yaml out), keep each old data dir aside "
            "(member.before-restore-job…), put the restored one in place",
        ),
        PlannedStep.of(
            StartEtcdParams(members=members),
            "Start etcd (etcd.yaml back); wait for every member healthy, one cluster, one revision",
        ),
        PlannedStep.of(
            StartApiServersParams(members=members),
            "Start the API servers (kube-apiserver.yaml back); wait for every node Ready",
        ),
        PlannedStep.of(
            CleanUpParams(members=members, backup=backup),
            "Remove the staged snapshots from the hosts",
        ),
    ]


def decide_restore(seen: RestoreSnapshot, *, now: float) -> Plan:
    """The disaster-recovery plan, or a PlanError saying why not. Pure."""
    refused = refusal(seen)
    if refused is not None:
        raise PlanError(refused)
    taken = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seen.backup_taken))
    age_h = max(0.0, now - seen.backup_taken) / 3600
    return Plan(
        verb=RestoreEtcdPlaybook.verb,
        cluster=seen.cluster,
        target="etcd",
        title=f"Restore etcd of {seen.cluster} from {seen.backup}",
        steps=restore_steps(seen),
        facts={
            "backup": seen.backup,
            "sha256": seen.backup_sha256,
            "members": [f"{m.name}={m.peer_url}" for m in seen.members],
        },
        preview=[
            f"⚠️ Everything written to the cluster after the backup ({taken}, "
            f"{age_h:.1f} h ago) is lost",
            f"The Kubernetes API is down from step 2 until step 6 on {len(seen.members)} "
            "control plane(s)",
            "The old etcd data stays on each host (member.before-restore-job…)",
            "[Abort] after a halt undoes the finished steps: etcd back on its old data, the "
            "API servers back",
        ],
        risk="high",
        locks=["*"],
    )


class RestoreEtcdPlaybook(Playbook[RestoreEtcdCommand]):
    verb: ClassVar[str] = "restore"
    command_type = RestoreEtcdCommand

    async def plan(self, command: RestoreEtcdCommand, cluster: ClusterHandle) -> Plan:
        return decide_restore(await observe_restore(cluster, command.backup), now=time.time())
