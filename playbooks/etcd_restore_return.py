"""The second half of `restore etcd`: every member stopped and switched onto its restored data
(the old data kept aside), etcd started and checked (every member healthy, one cluster, one
revision), the API servers back and the nodes Ready, the staged snapshots removed."""

from __future__ import annotations

import json
from typing import ClassVar, Literal

from playbooks.base import RemoteShell, Step, StepContext, StepOutcome, StepResult
from playbooks.errors import OperationError
from playbooks.etcd_members import MemberPlan, member_health
from playbooks.etcd_restore_steps import (
    NODES_READY_TIMEOUT_S,
    QUORUM_TIMEOUT_S,
    STOP_TIMEOUT_S,
    RestoreError,
    container_running,
    fresh_dir,
    move_manifest,
    must,
    remove_staged,
    target_of,
    wait_until,
)
from playbooks.etcd_tools import etcd_tools
from playbooks.plan import StepParams
from playbooks.ssh import SshTarget


def kept_aside(member: MemberPlan, job_id: int) -> str:
    return f"{member.data_dir}/member.before-restore-job{job_id}"


class SwapDataParams(StepParams):
    step: Literal["swap-data"] = "swap-data"
    members: list[MemberPlan]


class Swapped(StepOutcome):
    kept_aside: list[str]


class SwapData(Step[SwapDataParams]):
    """Stop every member (etcd.yaml out), then put each on its restored data. etcd keeps its
    state in <data-dir>/member: the old one is renamed aside, never deleted."""

    name: ClassVar[str] = "swap-data"
    params_model: ClassVar[type[StepParams]] = SwapDataParams

    async def run(self, ctx: StepContext) -> StepResult:
        ssh = await ctx.cluster.ssh()
        members = self.params.members
        for member in members:
            await ctx.progress(
                await move_manifest(ssh, target_of(ctx.cluster, member), "etcd", out=True) + "\n"
            )
        for member in members:
            target = target_of(ctx.cluster, member)

            async def stopped(target: SshTarget = target) -> bool:
                return not await container_running(ssh, target, "etcd")

            await wait_until(stopped, timeout=STOP_TIMEOUT_S, what=f"{member.node}'s etcd to stop")
        aside = []
        for member in members:
            aside.append(await swap_one(ssh, target_of(ctx.cluster, member), member, ctx.job_id))
            await ctx.progress(f"{member.node}: old data kept at {aside[-1]}\n")
        return StepResult.done(
            "every member stopped and on its restored data; the old data kept aside ("
            + ", ".join(f"{m.node}:{a}" for m, a in zip(members, aside, strict=True))
            + ")",
            Swapped(kept_aside=aside),
        )

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        """Each member back on the data it had before this job; the restored data kept aside."""
        ssh = await ctx.cluster.ssh()
        members = self.params.members
        for member in members:
            await move_manifest(ssh, target_of(ctx.cluster, member), "etcd", out=True)
        for member in members:
            target = target_of(ctx.cluster, member)

            async def stopped(target: SshTarget = target) -> bool:
                return not await container_running(ssh, target, "etcd")

            await wait_until(stopped, timeout=STOP_TIMEOUT_S, what=f"{member.node}'s etcd to stop")
            aside, live = kept_aside(member, ctx.job_id), f"{member.data_dir}/member"
            if (await ssh.run(target, ["test", "-d", aside])).ok:
                restored = f"{member.data_dir}/member.restored-job{ctx.job_id}"
                await must(ssh, target, ["mv", live, restored], "keeping the restored data aside")
                await must(ssh, target, ["mv", aside, live], "putting the old data back")
        for member in members:
            await move_manifest(ssh, target_of(ctx.cluster, member), "etcd", out=False)
        return "etcd back on its data from before the restore on " + ", ".join(
            m.node for m in members
        )


async def swap_one(ssh: RemoteShell, target: SshTarget, member: MemberPlan, job_id: int) -> str:
    live, aside = f"{member.data_dir}/member", kept_aside(member, job_id)
    restored = f"{fresh_dir(member, job_id)}/member"
    if not (await ssh.run(target, ["test", "-d", restored])).ok:
        if (await ssh.run(target, ["test", "-d", aside])).ok:
            return aside  # swapped by an earlier try of this step
        raise RestoreError(f"no restored data at {restored} on {target.node}")
    if (await ssh.run(target, ["test", "-e", live])).ok:
        await must(ssh, target, ["mv", live, aside], "keeping the old data aside")
    await must(ssh, target, ["mv", restored, live], "putting the restored data in place")
    await must(ssh, target, ["rmdir", fresh_dir(member, job_id)], "removing the empty dir")
    return aside


class StartEtcdParams(StepParams):
    step: Literal["start-etcd"] = "start-etcd"
    members: list[MemberPlan]


class EtcdBack(StepOutcome):
    revision: int
    cluster_id: int


class StartEtcd(Step[StartEtcdParams]):
    name: ClassVar[str] = "start-etcd"
    params_model: ClassVar[type[StepParams]] = StartEtcdParams

    async def run(self, ctx: StepContext) -> StepResult:
        ssh = await ctx.cluster.ssh()
        members = self.params.members
        for member in members:
            target = target_of(ctx.cluster, member)
            await ctx.progress(await move_manifest(ssh, target, "etcd", out=False) + "\n")
        targets = [target_of(ctx.cluster, m) for m in members]
        settings = ctx.cluster.inventory.etcd

        async def quorum() -> bool:
            health = await member_health(ssh, targets, settings)
            return (
                health is not None
                and len(health) == len(members)
                and all(h.healthy for h in health)
            )

        await wait_until(quorum, timeout=QUORUM_TIMEOUT_S, what="every etcd member healthy")
        tools = await etcd_tools(ssh, targets[0], settings)
        status = await must(
            ssh,
            targets[0],
            tools.etcdctl("endpoint", "status", "--cluster", "-w", "json"),
            "etcdctl endpoint status",
        )
        headers = [entry["Status"]["header"] for entry in json.loads(status.stdout)]
        revisions = {int(h["revision"]) for h in headers}
        clusters = {int(h["cluster_id"]) for h in headers}
        if len(headers) != len(members) or len(revisions) != 1 or len(clusters) != 1:
            return StepResult.failed(
                f"etcd answers but its members disagree: revisions {sorted(revisions)}, "
                f"clusters {len(clusters)}, members {len(headers)} of {len(members)}",
                output=status.tail(),
            )
        revision, cluster_id = revisions.pop(), clusters.pop()
        return StepResult.done(
            f"etcd is back: {len(members)} of {len(members)} members healthy (quorum), one "
            f"cluster, every member at revision {revision}",
            EtcdBack(revision=revision, cluster_id=cluster_id),
            output=status.tail(),
        )


class StartApiServersParams(StepParams):
    step: Literal["start-apiservers"] = "start-apiservers"
    members: list[MemberPlan]


class NodesBack(StepOutcome):
    ready: list[str]


class StartApiServers(Step[StartApiServersParams]):
    name: ClassVar[str] = "start-apiservers"
    params_model: ClassVar[type[StepParams]] = StartApiServersParams

    async def run(self, ctx: StepContext) -> StepResult:
        ssh = await ctx.cluster.ssh()
        for member in self.params.members:
            target = target_of(ctx.cluster, member)
            await ctx.progress(await move_manifest(ssh, target, "kube-apiserver", out=False) + "\n")
        ready: list[str] = []
        told: list[str] = []

        async def nodes_ready() -> bool:
            try:
                nodes = await ctx.cluster.kube.list_nodes()
            except OperationError as error:
                if not told:  # the API servers are still starting: said once, then waited
                    told.append(error.message)
                    await ctx.progress(
                        "waiting for the API servers to come back after their restart\n"
                    )
                return False
            ready[:] = [n.name for n in nodes if n.ready]
            return bool(nodes) and len(ready) == len(nodes)

        await wait_until(nodes_ready, timeout=NODES_READY_TIMEOUT_S, what="every node Ready")
        return StepResult.done(
            f"API servers back; the API answers and all {len(ready)} nodes are Ready",
            NodesBack(ready=ready),
        )


class CleanUpParams(StepParams):
    step: Literal["clean-up"] = "clean-up"
    members: list[MemberPlan]
    backup: str


class CleanedUp(StepOutcome):
    removed: list[str]


class CleanUp(Step[CleanUpParams]):
    """The staged snapshots hold every Secret of the cluster: they do not stay on the hosts."""

    name: ClassVar[str] = "clean-up"
    params_model: ClassVar[type[StepParams]] = CleanUpParams

    async def run(self, ctx: StepContext) -> StepResult:
        removed = await remove_staged(ctx, self.params.members, self.params.backup)
        return StepResult.done(
            "removed the staged snapshots; the old etcd data stays aside until you delete it",
            CleanedUp(removed=removed),
        )
