"""Drain a node as careful operators do: cordon, refuse the whole drain up front if a pod would
be lost (bare pods, emptyDir), evict the rest through PDBs, and wait until they are gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from commands import DrainCommand, format_duration
from playbooks.base import (
    ClusterHandle,
    PlanError,
    Playbook,
    Step,
    StepContext,
    StepOutcome,
    StepResult,
)
from playbooks.cordon import SetSchedulableParams, read_node
from playbooks.eviction import evict_pods, wait_until_gone
from playbooks.kube import NodeView
from playbooks.plan import Plan, PlannedStep, StepParams
from playbooks.pods import (
    DrainSelection,
    Pdb,
    eviction_preview,
    pdb_view,
    pod_view,
    select_for_drain,
)


async def snapshot(cluster: ClusterHandle, node: str) -> tuple[DrainSelection, list[Pdb]]:
    pods = [pod_view(p) for p in await cluster.kube.pods_on(node)]
    pdbs = [pdb_view(p) for p in await cluster.kube.list_pdbs()]
    return select_for_drain(pods), pdbs


def drain_facts(selection: DrainSelection, pdbs: list[Pdb]) -> dict[str, Any]:
    guarding = {
        pdb.key: pdb.disruptions_allowed
        for pdb in pdbs
        if any(pdb.covers(p) for p in selection.evict)
    }
    return {
        "node_exists": True,
        "needs_force": sorted(p.key for p in selection.bare),
        "needs_emptydir_data": sorted(p.key for p in selection.empty_dir),
        "pdb_headroom": guarding,
    }


def drain_drift(approved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What bears on risk: new pods that need --force/--delete-emptydir-data, less PDB headroom."""
    changes = []
    for fact, flag in (
        ("needs_force", "--force"),
        ("needs_emptydir_data", "--delete-emptydir-data"),
    ):
        new = sorted(set(current.get(fact, [])) - set(approved.get(fact, [])))
        if new:
            changes.append(f"new pod(s) that need {flag}: {', '.join(new)}")
    before, after = approved.get("pdb_headroom", {}), current.get("pdb_headroom", {})
    for key in sorted(after):
        if key not in before:
            changes.append(
                f"PDB {key} now guards pods on this node ({after[key]} disruptions allowed)"
            )
        elif after[key] < before[key]:
            changes.append(
                f"PDB {key} has less headroom: {before[key]} disruptions allowed then, {after[key]} now"
            )
    return changes


@dataclass(frozen=True)
class DrainSnapshot:
    """What a drain's plan is decided from: the node, its pods (sorted for the drain), the PDBs."""

    node: NodeView
    selection: DrainSelection
    pdbs: list[Pdb]


async def observe_drain(cluster: ClusterHandle, node_name: str) -> DrainSnapshot:
    node = await read_node(cluster, node_name)
    selection, pdbs = await snapshot(cluster, node.name)
    return DrainSnapshot(node=node, selection=selection, pdbs=pdbs)


class EvictPodsParams(StepParams):
    step: Literal["evict-pods"] = "evict-pods"
    node: str
    timeout_seconds: float
    force: bool = False
    delete_emptydir_data: bool = False

    @classmethod
    def of(cls, command: DrainCommand) -> EvictPodsParams:
        return cls(
            node=command.node,
            timeout_seconds=command.timeout.total_seconds(),
            force=command.force,
            delete_emptydir_data=command.delete_emptydir_data,
        )


class EvictedPod(StepOutcome):
    namespace: str
    name: str
    uid: str


class Evictions(StepOutcome):
    """The pods evicted, and when the drain's timeout ends (the wait step keeps to it)."""

    deadline_unix: float
    evicted: list[EvictedPod]


def facts_mid_drain(approved: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The facts that bear on the evictions still to do of a drain that already began.

    New pods that need --force/--delete-emptydir-data and PDBs newly guarding the node's pods
    count as at the start; less headroom of a PDB approvers saw does not: this drain's own
    evictions use it up, and the Eviction API keeps to it whatever it is.
    """
    headroom = dict(now.get("pdb_headroom", {}))
    for key, allowed in approved.get("pdb_headroom", {}).items():
        if key in headroom:
            headroom[key] = allowed
    return {**now, "pdb_headroom": headroom}


class EvictPods(Step[EvictPodsParams]):
    name: ClassVar[str] = "evict-pods"
    params_model: ClassVar[type[StepParams]] = EvictPodsParams
    # Each eviction is one API call the server applies whole or not at all, so stopping between
    # them is safe (as Ctrl-C on `kubectl drain`): a cancel must not wait out a PDB that holds.
    stoppable: ClassVar[bool] = True

    async def run(self, ctx: StepContext) -> StepResult:
        wanted = self.params
        selection, _ = await snapshot(ctx.cluster, wanted.node)
        blockers = selection.blockers(
            force=wanted.force, delete_emptydir_data=wanted.delete_emptydir_data
        )
        if blockers:
            return StepResult.failed(" ".join(blockers))
        deadline = time.monotonic() + wanted.timeout_seconds
        report = await evict_pods(ctx.cluster.kube, selection.evict, deadline=deadline)
        outcome = Evictions(
            deadline_unix=time.time() + (deadline - time.monotonic()),
            evicted=[
                EvictedPod(namespace=p.namespace, name=p.name, uid=p.uid) for p in report.evicted
            ],
        )
        problems = [f"{key}: {why}" for key, why in report.refused.items()]
        if report.blocked:
            held = "; ".join(f"{pod} held by PDB {pdbs}" for pod, pdbs in report.blocked.items())
            problems.append(
                f"timed out with pods still on {wanted.node}: {held}. The node stays cordoned"
            )
        if problems:
            return StepResult.failed("; ".join(problems), outcome)
        return StepResult.done(f"{len(report.evicted)} pod(s) evicted", outcome)


class WaitUntilGoneParams(StepParams):
    step: Literal["wait-gone"] = "wait-gone"
    node: str


class WaitUntilGone(Step[WaitUntilGoneParams]):
    name: ClassVar[str] = "wait-gone"
    params_model: ClassVar[type[StepParams]] = WaitUntilGoneParams
    stoppable: ClassVar[bool] = True  # it only watches

    async def run(self, ctx: StepContext) -> StepResult:
        node = self.params.node
        evictions = ctx.outcome(EvictPods.name, Evictions)
        deadline = time.monotonic() + max(0.0, evictions.deadline_unix - time.time())
        selection, _ = await snapshot(ctx.cluster, node)
        # What is left to wait for: every evicted pod, identified by its UID.
        uids = {pod.uid for pod in evictions.evicted}
        pods = [p for p in selection.evict if p.uid in uids]
        left = await wait_until_gone(ctx.cluster.kube, node, pods, deadline=deadline)
        if left:
            return StepResult.failed(
                "still terminating at the timeout: " + ", ".join(p.key for p in left)
            )
        return StepResult(ok=True, summary=f"{len(evictions.evicted)} pod(s) gone from {node}")


def decide_drain(seen: DrainSnapshot, command: DrainCommand, *, cluster: str) -> Plan:
    """The drain plan for what was observed, or a PlanError saying why not (pure)."""
    node, selection = seen.node, seen.selection
    blockers = selection.blockers(
        force=command.force, delete_emptydir_data=command.delete_emptydir_data
    )
    if blockers:
        raise PlanError(
            f"Refusing to drain {node.name}; nothing was changed. " + " ".join(blockers)
        )
    state = "cordoned already" if node.unschedulable else "schedulable now"
    steps = [
        PlannedStep.of(
            SetSchedulableParams(node=node.name, unschedulable=True),
            f"Cordon {node.name} ({state})",
            touches=[f"node/{node.name}"],
        ),
        PlannedStep.of(
            EvictPodsParams.of(command),
            f"Evict {len(selection.evict)} pod(s) through their PDBs",
            touches=[f"pod/{p.key}" for p in selection.evict],
        ),
        PlannedStep.of(
            WaitUntilGoneParams(node=node.name),
            f"Wait until they are gone (timeout {format_duration(command.timeout)})",
        ),
    ]
    return Plan(
        verb="drain",
        cluster=cluster,
        target=node.name,
        title=command.summary(),
        steps=steps,
        facts=drain_facts(selection, seen.pdbs),
        preview=eviction_preview(selection, seen.pdbs),
        risk="medium",
        locks=[f"node/{node.name}"],
    )


class DrainPlaybook(Playbook[DrainCommand]):
    verb: ClassVar[str] = "drain"
    command_type = DrainCommand
    abort_label: ClassVar[str] = "Uncordon"

    async def plan(self, command: DrainCommand, cluster: ClusterHandle) -> Plan:
        seen = await observe_drain(cluster, command.node)
        return decide_drain(seen, command, cluster=cluster.name)

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        return drain_drift(approved.facts, fresh.facts)

    async def facts_for_remaining(
        self, approved: Plan, cluster: ClusterHandle, *, finished: frozenset[str]
    ) -> dict[str, Any]:
        # Once the pods are evicted, waiting for them to go depends on nothing approvers saw.
        if EvictPods.name in finished:
            return approved.facts
        seen = await observe_drain(cluster, approved.target)
        return facts_mid_drain(approved.facts, drain_facts(seen.selection, seen.pdbs))
