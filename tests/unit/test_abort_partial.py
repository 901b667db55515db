"""Abort undoes a step that stopped midway when that step can undo its partial progress (from
its checkpoint): a half-done rollout does not leave the nodes it cordoned behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from approvals import Windows
from bot.audit import AuditLog
from bot.engine import Engine
from bot.redact import Redactor
from bot.store import Job, JobState, Store
from playbooks import ClusterHandle, Plan, Step, StepContext, StepResult
from tests.fakes import FakeKube, cluster_of
from tests.fakes.chat import RecordingChat


class Drained(Step[Any]):
    name = "drain"

    async def run(self, ctx: StepContext) -> StepResult:
        return StepResult(ok=True, summary="drained")

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        return "drain undone"


class RollingUpgrade(Step[Any]):
    name = "upgrade-workers"
    undoes_partial = True

    async def run(self, ctx: StepContext) -> StepResult:
        return StepResult(ok=False, summary="ssh: connection lost")

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        assert not result.ok
        return f"uncordoned {', '.join(result.data['cordoned'])}"


class TwoSteps(Engine):
    def _playbook_steps(self, job: Job) -> list[Step[Any]]:
        return [Drained("Drain", None), RollingUpgrade("Upgrade workers", None)]


class OneCluster:
    async def handle(self, name: str) -> ClusterHandle:
        return cluster_of(FakeKube())


async def test_abort_uncordons_what_a_halted_rollout_cordoned(tmp_path: Path) -> None:
    store = Store(tmp_path / "kubegate.db")
    now = datetime.now(UTC)
    plan = Plan(verb="upgrade", cluster="test", target="cluster", title="upgrade", steps=[])
    job = store.create_job(
        cluster="test",
        verb="upgrade",
        target="cluster",
        requester="U0ALICE",
        channel="C0OPS",
        command_text="upgrade cluster --to v1.31.3",
        state=JobState.FAILED,
        plan=plan.model_dump(mode="json"),
        plan_digest=plan.digest,
        approvals_needed=2,
        created_at=now,
        approval_deadline=now + timedelta(minutes=30),
    )
    store.add_steps(job.id, [("drain", "Drain"), ("upgrade-workers", "Upgrade workers")])
    store.step_finished(job.id, 0, ok=True, summary="drained", output="", data={})
    store.step_checkpoint(job.id, 1, {"cordoned": ["worker-2"]})
    store.step_finished(job.id, 1, ok=False, summary="ssh: connection lost", output="", data={})

    async def refresh_root(job_id: int) -> None:
        return None

    engine = TwoSteps(
        store=store,
        audit=AuditLog(store, Redactor()),
        chat=RecordingChat(),
        clusters=OneCluster(),
        windows=Windows(approval=timedelta(minutes=30), execution=timedelta(hours=2)),
        refresh_root=refresh_root,
    )
    assert await engine.abort(job.id, actor="U0ALICE", from_states=[JobState.FAILED])
    ended = store.job(job.id)
    assert ended.state is JobState.CANCELLED
    assert ended.outcome == "Aborted by <@U0ALICE>. uncordoned worker-2; drain undone"
    store.close()
