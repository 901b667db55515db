"""Resume re-runs the checks, not the changes: a check step runs again even when what it checks
already took effect, and a step first waits for what its earlier run may still be doing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.audit import AuditLog
from bot.redact import Redactor
from bot.step_runner import JobThread, StepRunner
from bot.store import Job, JobState, Store
from bot.store_health import StoreWrites
from playbooks import Plan, Step, StepContext, StepResult
from playbooks.plan import PlannedStep
from tests.fakes import FakeKube, cluster_of
from tests.fakes.chat import RecordingChat


class HealthGate(Step[Any]):
    name = "health-gate"
    recheck_on_resume = True

    def __init__(self, seen: list[str]) -> None:
        super().__init__("Health gate", None)
        self.seen = seen

    async def run(self, ctx: StepContext) -> StepResult:
        self.seen.append("gate ran")
        return StepResult(ok=True, summary="node healthy for 30 s")

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        self.seen.append("asked already_done")
        return StepResult(ok=True, summary="kubelet reports the target")


class KubeadmApply(Step[Any]):
    name = "kubeadm-apply"

    def __init__(self, seen: list[str]) -> None:
        super().__init__("kubeadm upgrade apply", None)
        self.seen = seen

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        self.seen.append("waited for the earlier apply")

    async def run(self, ctx: StepContext) -> StepResult:
        self.seen.append("apply ran")
        return StepResult(ok=True, summary="applied")

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        self.seen.append("asked already_done")
        return None


def runner_and_job(tmp_path: Path, steps: list[Step[Any]]) -> tuple[StepRunner, Job, StepContext]:
    store = Store(tmp_path / "kubegate.db")
    chat = RecordingChat()
    now = datetime.now(UTC)
    job = store.create_job(
        cluster="test",
        verb="upgrade",
        target="cp-1",
        requester="U0ALICE",
        channel="C0OPS",
        command_text="upgrade cp-1 --to v1.31.3",
        state=JobState.RUNNING,
        plan={},
        plan_digest="d1",
        approvals_needed=2,
        created_at=now,
        approval_deadline=now,
    )
    store.add_steps(job.id, [(s.name, s.title) for s in steps])
    plan = Plan(
        verb="upgrade",
        cluster="test",
        target="cp-1",
        title="upgrade cp-1",
        steps=[PlannedStep(name=s.name, title=s.title) for s in steps],
    )
    runner = StepRunner(
        store=store,
        audit=AuditLog(store, Redactor()),
        chat=chat,
        thread=JobThread(store=store, chat=chat),
        writes=StoreWrites(chat=chat),
    )

    async def say(text: str) -> None:
        return None

    ctx = StepContext(cluster=cluster_of(FakeKube()), plan=plan, job_id=job.id, results={}, say=say)
    return runner, job, ctx


async def test_a_health_gate_runs_again_on_resume_even_when_the_node_reports_the_target(
    tmp_path: Path,
) -> None:
    seen: list[str] = []
    gate = HealthGate(seen)
    runner, job, ctx = runner_and_job(tmp_path, [gate])
    result = await runner.run(job, ctx, gate, 0, check_done=True)
    assert result.summary == "node healthy for 30 s"
    assert seen == ["gate ran"]


async def test_a_resumed_remote_step_first_waits_for_its_earlier_run(tmp_path: Path) -> None:
    seen: list[str] = []
    apply = KubeadmApply(seen)
    runner, job, ctx = runner_and_job(tmp_path, [apply])
    await runner.run(job, ctx, apply, 0, check_done=True)
    assert seen == ["waited for the earlier apply", "asked already_done", "apply ran"]

    seen.clear()
    await runner.run(job, ctx, apply, 0, check_done=False)  # a first run waits for nothing
    assert seen == ["apply ran"]
