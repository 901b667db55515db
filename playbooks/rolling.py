"""Upgrading several nodes within one step: a node's whole procedure as a unit, and the rolling
wave over workers that never has more than `max_unavailable` nodes unschedulable at once.

Progress is checkpointed per node, so a retry or a resume skips finished nodes and a node this
job cordoned is uncordoned at its end even after a restart.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from commands import UpgradeNodeCommand
from playbooks.base import PlanError, Step, StepContext, StepOutcome, StepResult, build_step
from playbooks.upgrade_plan import plan_node_upgrade


@dataclass(frozen=True)
class PodLoss:
    """What the nodes' drains may give up, as the cluster upgrade was asked (and approved)."""

    delete_emptydir_data: bool = False
    force: bool = False


FinishedSteps = dict[str, dict[str, Any]]  # sub-step name -> its outcome data, in order


async def upgrade_one(
    ctx: StepContext,
    node: str,
    version: str,
    *,
    was_unschedulable: bool,
    loss: PodLoss,
    finished: FinishedSteps | None = None,
    on_finished: Callable[[str, StepResult], None] = lambda name, result: None,
) -> StepResult:
    """Every step of one node's upgrade. `finished` is None for a node this job has not touched
    yet; else the steps it finished there before a restart or a failure: those are not run
    again, except the checks (health gate, uncordon-if-it-was), which always run again."""
    command = UpgradeNodeCommand(
        node=node,
        to_version=version,
        delete_emptydir_data=loss.delete_emptydir_data,
        force=loss.force,
    )
    # Planned with the node's state before this job touched it, not after a restart found it
    # cordoned; the cluster upgrade took its etcd snapshot before anything else. Run at once:
    # the plan's first step (confirm-host) asks the host who it is, before the cordon.
    try:
        plan = await plan_node_upgrade(
            command, ctx.cluster, cordoned_before=was_unschedulable, snapshot=False, ask_host=False
        )
    except PlanError as refused:  # e.g. an etcd member went down since the last node
        return StepResult.failed(f"{node}: {refused.message}")
    # A kubelet at the target says nothing of a node this job started on: its health gate and
    # uncordon may still be to do.
    if plan.nothing_to_do and finished is None:
        return StepResult(ok=True, summary=f"{node} already at {version}")
    sub = StepContext(
        cluster=ctx.cluster,
        plan=plan,
        job_id=ctx.job_id,
        results={},
        say=ctx.say,
        secret=ctx.secret,
        progress=ctx.progress,
    )
    for step in map(build_step, plan.steps):
        result = await node_step(step, sub, finished)
        sub.results[step.name] = result
        if not result.ok:
            return StepResult.failed(
                f"{node}: {step.title} failed: {result.summary}", output=result.output
            )
        on_finished(step.name, result)
    return StepResult(ok=True, summary=f"{node} at {version}")


async def node_step(step: Step, sub: StepContext, finished: FinishedSteps | None) -> StepResult:
    """One step of a node's upgrade, as the step runner runs a job's step on resume."""
    if step.recheck_on_resume:
        return await step.run(sub)
    if finished is not None and step.name in finished:
        return StepResult(ok=True, summary="done before", data=finished[step.name])
    if finished is not None:  # this job was here before: what it started may still run
        await step.wait_for_leftovers(sub)
    return await step.already_done(sub) or await step.run(sub)


class Wave(StepOutcome):
    """What the rolling wave knows about each node: the step's checkpoint and its outcome."""

    before: dict[str, bool] = Field(default_factory=dict)  # node -> unschedulable before we began
    done: dict[str, float] = Field(default_factory=dict)  # node -> seconds its upgrade took
    failed: dict[str, str] = Field(default_factory=dict)  # node -> why
    # node -> the steps of its upgrade finished so far (by name, with their outcome data): a
    # node is done only once all of them, its checks included, have run.
    steps: dict[str, FinishedSteps] = Field(default_factory=dict)

    def begin(self, ctx: StepContext, node: str, *, cordoned: bool) -> FinishedSteps | None:
        """Record that the node's upgrade starts (or starts again): the steps this job finished
        there before, or None when it never touched the node (a checkpoint from before `steps`
        was kept names such a node in `before` alone)."""
        touched = node in self.steps or node in self.before
        self.before.setdefault(node, cordoned)
        finished = self.steps.setdefault(node, {})
        ctx.checkpoint(self.as_checkpoint())
        return finished if touched else None

    def step_finished(self, ctx: StepContext, node: str, name: str, result: StepResult) -> None:
        self.steps.setdefault(node, {})[name] = result.data
        ctx.checkpoint(self.as_checkpoint())

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any]) -> Wave:
        return cls.model_validate(data)

    def as_checkpoint(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


async def unschedulable_now(ctx: StepContext) -> set[str]:
    return {node.name for node in await ctx.cluster.kube.list_nodes() if node.unschedulable}


async def roll(
    ctx: StepContext,
    nodes: list[str],
    version: str,
    *,
    max_unavailable: int,
    at_once: int | None = None,
    loss: PodLoss = PodLoss(),
) -> StepResult:
    """Upgrade `nodes`, starting the next the moment there is room; stop starting at a failure."""
    wave = Wave.from_checkpoint(ctx.partial)
    pending = deque(n for n in nodes if n not in wave.done)
    wave.failed.clear()  # a retry tries the failed node again
    running: dict[asyncio.Task[StepResult], tuple[str, float]] = {}
    tails: dict[str, str] = {}  # a failed node's output, for the thread
    while pending or running:
        while pending and not wave.failed and (at_once is None or len(running) < at_once):
            node = pending[0]
            cordoned = await unschedulable_now(ctx)
            # Unavailable: cordoned now (by anyone), or in flight here but not cordoned yet.
            if (
                node not in cordoned
                and len(cordoned | {n for n, _ in running.values()}) >= max_unavailable
            ):
                break
            pending.popleft()
            done_before = wave.begin(ctx, node, cordoned=node in cordoned)
            await ctx.progress(f"{node}: upgrading ({len(running) + 1} in flight)")
            task = asyncio.create_task(
                upgrade_one(
                    ctx,
                    node,
                    version,
                    was_unschedulable=wave.before[node],
                    loss=loss,
                    finished=done_before,
                    on_finished=functools.partial(wave.step_finished, ctx, node),
                )
            )
            running[task] = (node, time.monotonic())
        if not running:
            if pending and not wave.failed:
                return StepResult.failed(
                    f"no room to take a node down: {max_unavailable} or more nodes "
                    "are cordoned by others",
                    wave,
                )
            break
        finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in finished:
            node, started = running.pop(task)
            result = task.result()
            if result.ok:
                wave.done[node] = round(time.monotonic() - started, 3)
            else:
                wave.failed[node] = result.summary
                tails[node] = result.output
            ctx.checkpoint(wave.as_checkpoint())
            await ctx.progress(f"{node}: {'done' if result.ok else 'FAILED'} — {result.summary}")
    return _report(wave, nodes, tails)


def _report(wave: Wave, nodes: list[str], tails: dict[str, str]) -> StepResult:
    states = []
    for node in nodes:
        if node in wave.done:
            states.append(f"{node}: upgraded")
        elif node in wave.failed:
            states.append(f"{node}: FAILED ({wave.failed[node]}), left as it is")
        else:
            states.append(f"{node}: not started")
    output = "\n".join(states + [f"--- {node} ---\n{tail}" for node, tail in tails.items() if tail])
    if wave.failed:
        return StepResult.failed(
            f"stopped after a failure; no new node was started. {'; '.join(states)}",
            wave,
            output=output,
        )
    return StepResult.done(f"{len(wave.done)} node(s) upgraded", wave, output=output)
