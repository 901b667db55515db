"""Drain a node as careful operators do: cordon, refuse the whole drain up front if a pod would
be lost (bare pods, emptyDir), evict the rest through PDBs, and wait until they are gone.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from commands import Command, DrainCommand, format_duration
from playbooks.base import ClusterHandle, PlanError, Playbook, Step, StepContext, StepResult
from playbooks.cordon import SetSchedulable, read_node
from playbooks.eviction import evict_pods, wait_until_gone
from playbooks.plan import Plan, PlannedStep
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


class EvictPods(Step):
    name: ClassVar[str] = "evict-pods"

    def __init__(self, title: str, *, command: DrainCommand) -> None:
        super().__init__(title)
        self.command = command

    async def run(self, ctx: StepContext) -> StepResult:
        selection, _ = await snapshot(ctx.cluster, self.command.node)
        blockers = selection.blockers(
            force=self.command.force, delete_emptydir_data=self.command.delete_emptydir_data
        )
        if blockers:
            return StepResult(ok=False, summary=" ".join(blockers))
        deadline = time.monotonic() + self.command.timeout.total_seconds()
        report = await evict_pods(ctx.cluster.kube, selection.evict, deadline=deadline)
        data = {
            "deadline_unix": time.time() + (deadline - time.monotonic()),
            "evicted": [
                {"namespace": p.namespace, "name": p.name, "uid": p.uid} for p in report.evicted
            ],
        }
        problems = [f"{key}: {why}" for key, why in report.refused.items()]
        if report.blocked:
            held = "; ".join(f"{pod} held by PDB {pdbs}" for pod, pdbs in report.blocked.items())
            problems.append(
                f"timed out with pods still on {self.command.node}: {held}. The node stays cordoned"
            )
        if problems:
            return StepResult(ok=False, summary="; ".join(problems), data=data)
        return StepResult(ok=True, summary=f"{len(report.evicted)} pod(s) evicted", data=data)


class WaitUntilGone(Step):
    name: ClassVar[str] = "wait-gone"

    def __init__(self, title: str, *, node: str) -> None:
        super().__init__(title)
        self.node = node

    async def run(self, ctx: StepContext) -> StepResult:
        evicted = ctx.results[EvictPods.name].data
        deadline = time.monotonic() + max(0.0, evicted["deadline_unix"] - time.time())
        selection, _ = await snapshot(ctx.cluster, self.node)
        # What is left to wait for: every evicted pod, identified by its UID.
        pods = [p for p in selection.evict if any(e["uid"] == p.uid for e in evicted["evicted"])]
        left = await wait_until_gone(ctx.cluster.kube, self.node, pods, deadline=deadline)
        if left:
            return StepResult(
                ok=False,
                summary="still terminating at the timeout: " + ", ".join(p.key for p in left),
            )
        return StepResult(
            ok=True, summary=f"{len(evicted['evicted'])} pod(s) gone from {self.node}"
        )


class DrainPlaybook(Playbook):
    verb: ClassVar[str] = "drain"
    abort_label: ClassVar[str] = "Uncordon"

    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        assert isinstance(command, DrainCommand)
        node = await read_node(cluster, command.node)
        selection, pdbs = await snapshot(cluster, node.name)
        blockers = selection.blockers(
            force=command.force, delete_emptydir_data=command.delete_emptydir_data
        )
        if blockers:
            raise PlanError(
                f"Refusing to drain {node.name}; nothing was changed. " + " ".join(blockers)
            )
        state = "cordoned already" if node.unschedulable else "schedulable now"
        steps = [
            PlannedStep(
                name=SetSchedulable.name,
                title=f"Cordon {node.name} ({state})",
                touches=[f"node/{node.name}"],
            ),
            PlannedStep(
                name=EvictPods.name,
                title=f"Evict {len(selection.evict)} pod(s) through their PDBs",
                touches=[f"pod/{p.key}" for p in selection.evict],
            ),
            PlannedStep(
                name=WaitUntilGone.name,
                title=f"Wait until they are gone (timeout {format_duration(command.timeout)})",
            ),
        ]
        return Plan(
            verb=self.verb,
            cluster=cluster.name,
            target=node.name,
            title=command.summary(),
            steps=steps,
            facts=drain_facts(selection, pdbs),
            preview=eviction_preview(selection, pdbs),
            risk="medium",
            locks=[f"node/{node.name}"],
        )

    def steps(self, plan: Plan, command: Command) -> list[Step]:
        assert isinstance(command, DrainCommand)
        return [
            SetSchedulable(plan.steps[0].title, node=plan.target, unschedulable=True),
            EvictPods(plan.steps[1].title, command=command),
            WaitUntilGone(plan.steps[2].title, node=plan.target),
        ]

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        return drain_drift(approved.facts, fresh.facts)
