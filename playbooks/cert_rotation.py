"""The steps of a certificate rotation, one control plane at a time: expiry before, `kubeadm
certs renew all` and the static pods' restart, expiry after, the public certificates to Vault.
Each long step checkpoints per node, so a resume or a retry never repeats what is done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import Field

from playbooks.base import Step, StepContext, StepOutcome, StepResult
from playbooks.cert_checks import CHECK_EXPIRATION, check_expiration, read_public_certificates
from playbooks.control_plane_health import ControlPlaneNode, check_etcd
from playbooks.inventory import Inventory
from playbooks.kubeconfig_refresh import kubeconfig_source
from playbooks.plan import StepParams
from playbooks.remote import (
    NodeRef,
    Remote,
    RemoteCommand,
    failed,
    running_file,
    wait_for_leftover,
)
from playbooks.ssh import SshTarget
from playbooks.static_pods import CONTROL_PLANE_PODS, StaticPod, restart_static_pod

RENEW_ALL = RemoteCommand.of("kubeadm", "certs", "renew", "all")
FRESH_DAYS = 300  # kubeadm renews for a year; a certificate this far out needs nothing


def renewable(expiries: dict[str, str]) -> dict[str, str]:
    return {name: when for name, when in expiries.items() if not name.startswith("ca:")}


def renewed(before: str, after: str, *, now: datetime) -> bool:
    """Later than before, or (renewed within the same minute kubeadm rounds to) nearly a
    full year of validity left."""
    fresh = (datetime.fromisoformat(after) - now).days >= FRESH_DAYS
    return after > before or fresh


def vault_path(inventory: Inventory, cluster: str, node: str) -> str:
    return f"{inventory.certs_vault_path}/{cluster}/{node}"


async def _targets(ctx: StepContext, nodes: list[str]) -> list[SshTarget]:
    return [await ctx.cluster.ssh_target(node) for node in nodes]


class CheckExpiryParams(StepParams):
    step: Literal["check-expiration"] = "check-expiration"
    nodes: list[str]


class ExpiryBefore(StepOutcome):
    # node -> certificate (`ca:` before an authority's name) -> expiry, ISO 8601
    before: dict[str, dict[str, str]]
    # The control plane whose admin.conf kubegate's own kubeconfig was copied from, if any.
    kubeconfig_from: str | None = None


class CheckExpiry(Step[CheckExpiryParams]):
    """Each node's certificates and their expiry before anything changes (read-only)."""

    name: ClassVar[str] = "check-expiration"
    params_model: ClassVar[type[StepParams]] = CheckExpiryParams

    async def run(self, ctx: StepContext) -> StepResult:
        now, before, lines = datetime.now(UTC), {}, []
        targets = await _targets(ctx, self.params.nodes)
        for target in targets:
            expiry = await check_expiration(ctx.cluster, target)
            before[target.node] = {
                ("ca:" if row.is_authority else "") + row.name: row.expires.isoformat()
                for row in expiry.table.rows()
                if not row.externally_managed
            }
            lines.append(expiry.soonest_words(now))
        source = await kubeconfig_source(ctx.cluster, targets)
        if source is not None:
            lines.append(f"kubegate's own kubeconfig came from {source}'s admin.conf")
        return StepResult.done(
            "; ".join(lines), ExpiryBefore(before=before, kubeconfig_from=source)
        )


class RenewAndRestartParams(StepParams):
    step: Literal["renew-and-restart"] = "renew-and-restart"
    nodes: list[str]


class Renewals(StepOutcome):
    """How far the rotation got: also the step's checkpoint."""

    renewed: list[str] = Field(default_factory=list)  # nodes
    restarted: dict[str, list[str]] = Field(default_factory=dict)  # node -> static pods
    # The node whose `kubeadm certs renew all` was started and not seen to end: a resume
    # waits for it there, then asks its certificates whether it took effect.
    renewing: str | None = None


Say = Callable[[str], Awaitable[None]]


class RenewAndRestart(Step[RenewAndRestartParams]):
    """Per node: renew, then restart each static pod; checkpointed so a resume or a retry
    never renews a node twice nor restarts a pod that already came back."""

    name: ClassVar[str] = "renew-and-restart"
    params_model: ClassVar[type[StepParams]] = RenewAndRestartParams

    async def run(self, ctx: StepContext) -> StepResult:
        done = Renewals.model_validate(ctx.partial)
        said: list[str] = []

        async def say(line: str) -> None:  # kept as the step's output once the step is done
            said.append(line)
            await ctx.progress(line)

        for node in self.params.nodes:
            remote = await Remote.open(ctx, NodeRef(name=node))
            if await self._must_be_whole_first(ctx, remote, node, done):
                # Before each control plane, etcd whole: restarting a member of a cluster
                # that already lost one would lose quorum.
                problem = await check_etcd(remote, ctx.cluster.inventory.etcd)
                if problem is not None:
                    return StepResult.failed(_refusal(node, problem, done), done)
            if node not in done.renewed:
                renewal = await self._renew(ctx, remote, node, done, say)
                if isinstance(renewal, StepResult):
                    return renewal
                done = renewal
            done = await self._restart_pods(ctx, remote, node, done, say)
        return StepResult.done(
            f"renewed and restarted {', '.join(CONTROL_PLANE_PODS)} "
            f"on {', '.join(self.params.nodes)}",
            done,
            output="\n".join(said),
        )

    async def _renew(
        self, ctx: StepContext, remote: Remote, node: str, done: Renewals, say: Say
    ) -> Renewals | StepResult:
        """`kubeadm certs renew all` on `node`, with a running file there; a renewal an earlier
        run started (and a resume waited for) counts when every certificate it renews now
        expires later than before, so it is not run a second time."""
        if done.renewing == node and await self._renewed_before(ctx, remote, node):
            await say(
                f"{node}: every certificate kubeadm renews there expires later than before (or "
                "a year out): the renewal started before the restart is not run again"
            )
        else:
            done = done.model_copy(update={"renewing": node})
            ctx.checkpoint(done.model_dump(mode="json"))
            await say(f"{node}: {RENEW_ALL.label}")
            running = running_file(ctx.job_id, self.name)
            result = await remote.run(RENEW_ALL, running=running, on_output=say)
            if not result.ok:
                return failed(result, RENEW_ALL.label)
        done = done.model_copy(update={"renewed": [*done.renewed, node], "renewing": None})
        ctx.checkpoint(done.model_dump(mode="json"))
        return done

    @staticmethod
    async def _renewed_before(ctx: StepContext, remote: Remote, node: str) -> bool:
        before = renewable(ctx.outcome(CheckExpiry.name, ExpiryBefore).before.get(node, {}))
        expiry = await check_expiration(ctx.cluster, remote.target)
        after = {row.name: row.expires.isoformat() for row in expiry.table.certificates}
        now = datetime.now(UTC)
        return bool(before) and all(
            renewed(then, after.get(name, then), now=now) for name, then in before.items()
        )

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        """On every node not done yet: its renewal, or a manifest move, may still run there."""
        done = Renewals.model_validate(ctx.partial)
        for node in self.params.nodes:
            if len(done.restarted.get(node, [])) < len(CONTROL_PLANE_PODS):
                await wait_for_leftover(ctx, NodeRef(name=node), self.name)

    async def _must_be_whole_first(
        self, ctx: StepContext, remote: Remote, node: str, done: Renewals
    ) -> bool:
        """Whether etcd is checked before `node`: always, unless it is all done, or a resume
        finds one of its manifests parked by us (its own member may be that one: putting it
        back comes first, and the wait after it checks the whole cluster)."""
        if len(done.restarted.get(node, [])) == len(CONTROL_PLANE_PODS):
            return False
        if node not in done.renewed:
            return True
        holding = ctx.cluster.inventory.static_pod_holding_dir
        parked = RemoteCommand.script(
            "any parked manifest", 'ls "$1"/*.yaml >/dev/null 2>&1', holding
        )
        return await remote.answer(parked) is None

    async def _restart_pods(
        self, ctx: StepContext, remote: Remote, node: str, done: Renewals, say: Say
    ) -> Renewals:
        """Each control-plane static pod of `node` not restarted yet, checkpointed one by one."""
        inventory = ctx.cluster.inventory
        restarted = list(done.restarted.get(node, []))
        plane = ControlPlaneNode(
            node, remote, inventory.apiserver_url(remote.target), inventory.etcd
        )
        timeout = inventory.static_pod_ready_timeout.total_seconds()
        for name in CONTROL_PLANE_PODS:
            if name in restarted:
                continue
            pod = StaticPod(name, node, inventory.static_pod_holding_dir)

            async def api_back(name: str = name) -> None:
                await plane.wait_for_api_server(after=name, timeout=timeout, say=say)

            await restart_static_pod(
                ctx.cluster,
                remote,
                pod,
                say=say,
                pause=inventory.static_pod_pause.total_seconds(),
                timeout=timeout,
                api_back=api_back,
                running=running_file(ctx.job_id, self.name),
            )
            # That node's own API server and etcd member, not whichever the LB picks.
            await plane.wait_until_whole(timeout=timeout, say=say)
            restarted.append(name)
            done = done.model_copy(update={"restarted": {**done.restarted, node: restarted}})
            ctx.checkpoint(done.model_dump(mode="json"))
        return done


def _refusal(node: str, problem: str, done: Renewals) -> str:
    if node in done.renewed:
        state = f"{node}'s certificates are renewed; its static pods are not all restarted yet"
    else:
        earlier = f" ({', '.join(done.renewed)} renewed before)" if done.renewed else ""
        state = f"Nothing was changed on {node}{earlier}"
    return (
        f"refused before {node}: {problem}. {state}. Bring every etcd member back "
        "(`etcdctl endpoint health --cluster`), then [Retry step]"
    )


class CheckRenewedParams(StepParams):
    step: Literal["check-renewed"] = "check-renewed"
    nodes: list[str]


class CheckRenewed(Step[CheckRenewedParams]):
    """Every certificate kubeadm manages expires later than before the renewal."""

    name: ClassVar[str] = "check-renewed"
    params_model: ClassVar[type[StepParams]] = CheckRenewedParams

    async def run(self, ctx: StepContext) -> StepResult:
        before = ctx.outcome(CheckExpiry.name, ExpiryBefore).before
        now, stale, lines = datetime.now(UTC), [], []
        for target in await _targets(ctx, self.params.nodes):
            expiry = await check_expiration(ctx.cluster, target)
            after = {row.name: row.expires.isoformat() for row in expiry.table.certificates}
            for name, then in renewable(before.get(target.node, {})).items():
                if not renewed(then, after.get(name, then), now=now):
                    stale.append(f"{name} on {target.node} still expires {then[:16]}")
            lines.append(expiry.soonest_words(now))
        if stale:
            return StepResult.failed(
                "not renewed: "
                + "; ".join(stale)
                + f". Look at `{CHECK_EXPIRATION.label}` on the node."
            )
        return StepResult(ok=True, summary="; ".join(lines))


class StoreInVaultParams(StepParams):
    step: Literal["store-in-vault"] = "store-in-vault"
    nodes: list[str]


class StoredInVault(StepOutcome):
    """Each node's KV v2 secret version written; also the step's checkpoint."""

    versions: dict[str, int] = Field(default_factory=dict)


class StoreInVault(Step[StoreInVaultParams]):
    """Each node's renewed public certificates as one KV v2 secret, written with check-and-set."""

    name: ClassVar[str] = "store-in-vault"
    params_model: ClassVar[type[StepParams]] = StoreInVaultParams

    async def run(self, ctx: StepContext) -> StepResult:
        vault = ctx.cluster.vault
        if vault is None:
            return StepResult(
                ok=True,
                summary="skipped: no Vault is configured, so the renewed "
                "certificates stay only on the nodes",
            )
        versions = dict(StoredInVault.model_validate(ctx.partial).versions)
        for target in await _targets(ctx, self.params.nodes):
            if target.node in versions:
                continue
            certificates = await read_public_certificates(ctx.cluster, target)
            if not certificates:
                return StepResult.failed(f"no renewed certificate file found on {target.node}")
            path = vault_path(ctx.cluster.inventory, ctx.cluster.name, target.node)
            cas = await vault.version(path)
            secret = {**certificates, "kubegate_job": str(ctx.job_id)}
            versions[target.node] = await vault.write(path, secret, cas=cas)
            ctx.checkpoint(StoredInVault(versions=versions).model_dump(mode="json"))
            await ctx.progress(
                f"{target.node}: {len(certificates)} certificate(s) at {path}, "
                f"version {versions[target.node]}"
            )
        stored = ", ".join(f"{node} v{version}" for node, version in versions.items())
        return StepResult.done(f"stored in Vault: {stored}", StoredInVault(versions=versions))
