"""Rotate control-plane certificates the kubeadm way, one control plane at a time: check expiry,
`kubeadm certs renew all`, restart the static control-plane pods, check again, store the renewed
public certificates in Vault KV v2 with check-and-set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from commands import Command, RotateCertsCommand
from playbooks.base import ClusterHandle, PlanError, Playbook, Step, StepContext, StepResult
from playbooks.cert_checks import (
    CHECK_EXPIRATION,
    NodeExpiry,
    certificate_holders,
    check_expiration,
    read_public_certificates,
)
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.plan import Plan, PlannedStep
from playbooks.remote import NodeRef, Remote, RemoteCommand, failed
from playbooks.ssh import SshTarget
from playbooks.static_pods import CONTROL_PLANE_PODS, StaticPod, restart_static_pod

RENEW_ALL = RemoteCommand.of("kubeadm", "certs", "renew", "all")
FRESH_DAYS = 300  # kubeadm renews for a year; a certificate this far out needs nothing


def renewable(expiries: dict[str, str]) -> dict[str, str]:
    return {name: when for name, when in expiries.items() if not name.startswith("ca:")}


async def _targets(ctx: StepContext, nodes: list[str]) -> list[SshTarget]:
    return [await ctx.cluster.ssh_target(node) for node in nodes]


class CheckExpiry(Step):
    """Each node's certificates and their expiry before anything changes (read-only)."""

    name: ClassVar[str] = "check-expiration"

    def __init__(self, title: str, *, nodes: list[str]) -> None:
        super().__init__(title)
        self.nodes = nodes

    async def run(self, ctx: StepContext) -> StepResult:
        now, before, lines = datetime.now(UTC), {}, []
        for target in await _targets(ctx, self.nodes):
            expiry = await check_expiration(ctx.cluster, target)
            before[target.node] = {
                ("ca:" if row.is_authority else "") + row.name: row.expires.isoformat()
                for row in expiry.table.rows()
                if not row.externally_managed
            }
            lines.append(expiry.soonest_words(now))
        return StepResult(ok=True, summary="; ".join(lines), data={"before": before})


class RenewAndRestart(Step):
    """Per node: renew, then restart each static pod; checkpointed so a resume or a retry
    never renews a node twice nor restarts a pod that already came back."""

    name: ClassVar[str] = "renew-and-restart"

    def __init__(self, title: str, *, nodes: list[str]) -> None:
        super().__init__(title)
        self.nodes = nodes

    async def run(self, ctx: StepContext) -> StepResult:
        done: dict[str, Any] = {
            "renewed": list(ctx.partial.get("renewed", [])),
            "restarted": dict(ctx.partial.get("restarted", {})),
        }
        inventory, said = ctx.cluster.inventory, []

        async def say(line: str) -> None:  # kept as the step's output once the step is done
            said.append(line)
            await ctx.progress(line)

        for node in self.nodes:
            remote = await Remote.open(ctx, NodeRef(node))
            if node not in done["renewed"]:
                await say(f"{node}: {RENEW_ALL.label}")
                renewed = await remote.ssh.run(
                    remote.target, RENEW_ALL.argv, timeout=remote.timeout, on_output=say
                )
                if not renewed.ok:
                    return failed(renewed, RENEW_ALL.label)
                done["renewed"].append(node)
                ctx.checkpoint(done)
            restarted: list[str] = list(done["restarted"].get(node, []))
            for name in CONTROL_PLANE_PODS:
                if name in restarted:
                    continue
                pod = StaticPod(name, node, inventory.static_pod_holding_dir)
                await restart_static_pod(
                    ctx.cluster,
                    remote,
                    pod,
                    say=say,
                    pause=inventory.static_pod_pause.total_seconds(),
                    timeout=inventory.static_pod_ready_timeout.total_seconds(),
                )
                restarted.append(name)
                done["restarted"][node] = restarted
                ctx.checkpoint(done)
        return StepResult(
            ok=True,
            data=done,
            output="\n".join(said),
            summary=f"renewed and restarted {', '.join(CONTROL_PLANE_PODS)} "
            f"on {', '.join(self.nodes)}",
        )


class CheckRenewed(Step):
    """Every certificate kubeadm manages expires later than before the renewal."""

    name: ClassVar[str] = "check-renewed"

    def __init__(self, title: str, *, nodes: list[str]) -> None:
        super().__init__(title)
        self.nodes = nodes

    async def run(self, ctx: StepContext) -> StepResult:
        before = ctx.results[CheckExpiry.name].data.get("before", {})
        now, stale, lines = datetime.now(UTC), [], []
        for target in await _targets(ctx, self.nodes):
            expiry = await check_expiration(ctx.cluster, target)
            after = {row.name: row.expires.isoformat() for row in expiry.table.certificates}
            for name, then in renewable(before.get(target.node, {})).items():
                if not renewed(then, after.get(name, then), now=now):
                    stale.append(f"{name} on {target.node} still expires {then[:16]}")
            lines.append(expiry.soonest_words(now))
        if stale:
            return StepResult(
                ok=False,
                summary="not renewed: "
                + "; ".join(stale)
                + f". Look at `{CHECK_EXPIRATION.label}` on the node.",
            )
        return StepResult(ok=True, summary="; ".join(lines))


def renewed(before: str, after: str, *, now: datetime) -> bool:
    """Later than before, or (renewed within the same minute kubeadm rounds to) nearly a
    full year of validity left."""
    fresh = (datetime.fromisoformat(after) - now).days >= FRESH_DAYS
    return after > before or fresh


class StoreInVault(Step):
    """Each node's renewed public certificates as one KV v2 secret, written with check-and-set."""

    name: ClassVar[str] = "store-in-vault"

    def __init__(self, title: str, *, nodes: list[str]) -> None:
        super().__init__(title)
        self.nodes = nodes

    async def run(self, ctx: StepContext) -> StepResult:
        vault = ctx.cluster.vault
        if vault is None:
            return StepResult(
                ok=True,
                summary="skipped: no Vault is configured, so the renewed "
                "certificates stay only on the nodes",
            )
        versions: dict[str, int] = dict(ctx.partial.get("versions", {}))
        for target in await _targets(ctx, self.nodes):
            if target.node in versions:
                continue
            certificates = await read_public_certificates(ctx.cluster, target)
            if not certificates:
                return StepResult(
                    ok=False, summary=f"no renewed certificate file found on {target.node}"
                )
            path = vault_path(ctx.cluster.inventory, ctx.cluster.name, target.node)
            cas = await vault.version(path)
            secret = {**certificates, "kubegate_job": str(ctx.job_id)}
            versions[target.node] = await vault.write(path, secret, cas=cas)
            ctx.checkpoint({"versions": versions})
            await ctx.progress(
                f"{target.node}: {len(certificates)} certificate(s) at {path}, "
                f"version {versions[target.node]}"
            )
        stored = ", ".join(f"{node} v{version}" for node, version in versions.items())
        return StepResult(
            ok=True, summary=f"stored in Vault: {stored}", data={"versions": versions}
        )


def vault_path(inventory: Inventory, cluster: str, node: str) -> str:
    return f"{inventory.certs_vault_path}/{cluster}/{node}"


@dataclass(frozen=True)
class RotationSnapshot:
    """What a rotation is decided from: the nodes, and each asked control plane's expiry table
    (read only when the request names control planes kubegate can reach)."""

    cluster: str
    inventory: Inventory
    vault_configured: bool
    nodes: list[NodeView]
    expiries: dict[str, NodeExpiry]
    observed_at: datetime


async def observe_rotation(command: RotateCertsCommand, cluster: ClusterHandle) -> RotationSnapshot:
    nodes = await cluster.kube.list_nodes()
    try:
        targets = certificate_holders(cluster.name, cluster.inventory, nodes, command.node)
    except PlanError:
        targets = []  # nothing to read; deciding says why
    expiries = {t.node: await check_expiration(cluster, t) for t in targets}
    return RotationSnapshot(
        cluster=cluster.name,
        inventory=cluster.inventory,
        vault_configured=cluster.vault is not None,
        nodes=nodes,
        expiries=expiries,
        observed_at=datetime.now(UTC),
    )


def decide_rotation(command: RotateCertsCommand, seen: RotationSnapshot) -> Plan:
    """Which control planes, one at a time, with their soonest expiry; a PlanError when the
    request names none kubegate can reach. Pure."""
    targets = certificate_holders(seen.cluster, seen.inventory, seen.nodes, command.node)
    nodes = [target.node for target in targets]
    return Plan(
        verb=RotateCertsPlaybook.verb,
        cluster=seen.cluster,
        target=command.target,
        title=command.summary(),
        steps=[
            PlannedStep(name=name, title=title, touches=[f"node/{n}" for n in nodes])
            for name, title in step_titles(seen, nodes)
        ],
        facts={"control_planes": nodes},
        preview=[seen.expiries[node].soonest_words(seen.observed_at) for node in nodes],
        risk="high",
        locks=["*"],
    )


class RotateCertsPlaybook(Playbook):
    verb: ClassVar[str] = "rotate"

    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        assert isinstance(command, RotateCertsCommand)
        return decide_rotation(command, await observe_rotation(command, cluster))

    def steps(self, plan: Plan, command: Command) -> list[Step]:
        nodes = list(plan.facts["control_planes"])
        kinds: tuple[type[CheckExpiry | RenewAndRestart | CheckRenewed | StoreInVault], ...] = (
            CheckExpiry,
            RenewAndRestart,
            CheckRenewed,
            StoreInVault,
        )
        return [kind(step.title, nodes=nodes) for kind, step in zip(kinds, plan.steps, strict=True)]

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        # Expiry dates are what the job changes; only a different set of nodes needs new votes.
        then, now = approved.facts.get("control_planes"), fresh.facts.get("control_planes")
        return [] if then == now else [f"control planes: {then} then, {now} now"]


def step_titles(seen: RotationSnapshot, nodes: list[str]) -> list[tuple[str, str]]:
    inventory, where = seen.inventory, ", ".join(nodes)
    pause = inventory.static_pod_pause.total_seconds()
    vault = (
        (
            f"Store the renewed public certificates (*.crt, never keys) in Vault KV v2 at "
            f"{vault_path(inventory, seen.cluster, '<node>')} with check-and-set"
        )
        if seen.vault_configured
        else "Store the renewed certificates in Vault (skipped: no Vault configured)"
    )
    return [
        (CheckExpiry.name, f"Check expiry on {where} (`{CHECK_EXPIRATION.label}`)"),
        (
            RenewAndRestart.name,
            f"On {where}, one node at a time: `{RENEW_ALL.label}`, then restart "
            f"{', '.join(CONTROL_PLANE_PODS)} (manifest out for {pause:g} s, back, "
            "wait for its mirror pod to be Ready)",
        ),
        (
            CheckRenewed.name,
            "Check expiry again: every renewed certificate expires later than before",
        ),
        (StoreInVault.name, vault),
    ]
