"""The engine's gates on retry and abort, on the fake tier (in-memory API, SQLite in a temp dir,
a chat that remembers): no retry runs a step without passing freeze, window and drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from approvals import Freeze, Windows
from bot.audit import AuditLog
from bot.engine import Engine
from bot.redact import Redactor
from bot.store import JobState, Store, utcnow
from commands import parse_command
from playbooks import PLAYBOOKS, ClusterHandle
from tests.fakes import FakeKube, cluster_of, node, pod
from tests.fakes.chat import RecordingChat

HALTED = [JobState.FAILED, JobState.INTERRUPTED]


@dataclass
class World:
    store: Store
    kube: FakeKube
    chat: RecordingChat
    engine: Engine
    freeze: list[Freeze] = field(default_factory=list)

    def state(self) -> JobState:
        return self.store.job(1).state

    def actions(self) -> list[str]:
        return [e["action"] for e in AuditLog(self.store, Redactor()).events(job_id=1)]


class OneCluster:
    def __init__(self, kube: FakeKube) -> None:
        self.cluster = cluster_of(kube)

    async def handle(self, name: str) -> ClusterHandle:
        return self.cluster


@pytest.fixture
def world(tmp_path: Path) -> World:
    store = Store(tmp_path / "kubegate.db")
    kube = FakeKube(node("worker-1"))
    chat = RecordingChat()
    freezes: list[Freeze] = []

    async def refresh_root(job_id: int) -> None:
        return None

    engine = Engine(
        store=store,
        audit=AuditLog(store, Redactor()),
        chat=chat,
        clusters=OneCluster(kube),
        windows=Windows(approval=timedelta(minutes=30), execution=timedelta(hours=2)),
        refresh_root=refresh_root,
        active_freeze=lambda cluster: freezes[0] if freezes else None,
    )
    return World(store, kube, chat, engine, freezes)


async def failed_job(
    world: World, text: str, *, approvals: int = 1, break_glass: str | None = None
) -> None:
    """Job #1 for `text`, approved and started, halted by its API failing as set up before."""
    command = parse_command(text)
    plan = await PLAYBOOKS[command.verb].plan_command(command, cluster_of(world.kube))
    now = utcnow()
    world.store.create_job(
        cluster="test",
        verb=command.verb,
        target="worker-1",
        requester="U0ALICE",
        channel="C0OPS",
        command_text=text,
        state=JobState.APPROVED,
        plan=plan.model_dump(mode="json"),
        plan_digest=plan.digest,
        approvals_needed=approvals,
        created_at=now,
        approval_deadline=now + timedelta(minutes=30),
        break_glass=break_glass,
    )
    world.store.set_root_ts(1, "0.000")
    approve(world, JobState.APPROVED)
    await world.engine.start(1)
    assert world.state() is JobState.FAILED


async def failed_cordon(
    world: World, *, approvals: int = 1, break_glass: str | None = None
) -> None:
    """`cordon worker-1` whose one step failed (the API answered 500)."""
    world.kube.fail("set_unschedulable", 500)
    await failed_job(world, "cordon worker-1", approvals=approvals, break_glass=break_glass)


def approve(world: World, state: JobState) -> None:
    now = utcnow()
    world.store.transition(
        1,
        from_states=[state],
        to=JobState.APPROVED,
        approved_at=now,
        execution_deadline=now + timedelta(hours=2),
    )


def close_window(world: World) -> None:
    past = utcnow() - timedelta(seconds=1)
    world.store.transition(
        1, from_states=[JobState.FAILED], to=JobState.FAILED, execution_deadline=past
    )


def set_unschedulable_calls(world: World) -> int:
    return [c[0] for c in world.kube.calls].count("set_unschedulable")


def freeze_now(world: World) -> None:
    world.freeze.append(
        Freeze(
            name="year-end", start=utcnow() - timedelta(days=1), end=utcnow() + timedelta(days=9)
        )
    )


async def test_a_retry_within_the_window_runs_the_failed_step_again(world: World) -> None:
    await failed_cordon(world)
    assert await world.engine.resume(1, actor="U0ALICE", from_states=HALTED)
    assert world.state() is JobState.SUCCEEDED and world.kube.node("worker-1").unschedulable


async def test_a_retry_during_a_freeze_is_refused_in_the_thread_and_the_job_stays_failed(
    world: World,
) -> None:
    await failed_cordon(world)
    freeze_now(world)
    assert world.engine.retry_refusal(1) is not None
    await world.engine.resume(1, actor="U0ALICE", from_states=HALTED)
    assert world.state() is JobState.FAILED and set_unschedulable_calls(world) == 1
    assert "Change freeze `year-end`" in world.chat.thread()[-1]
    assert "was not retried" in world.chat.thread()[-1]
    assert world.actions()[-1] == "refusal"


async def test_a_retry_after_the_window_closed_goes_back_for_approval_and_voids_old_votes(
    world: World,
) -> None:
    await failed_cordon(world)
    approved_digest = world.store.job(1).plan_digest
    close_window(world)
    await world.engine.resume(1, actor="U0ALICE", from_states=HALTED)
    job = world.store.job(1)
    assert job.state is JobState.PENDING_APPROVAL and set_unschedulable_calls(world) == 1
    assert job.plan_digest != approved_digest and job.plan["revision"] == 1
    assert job.approved_at is None and job.approval_deadline > utcnow()
    assert "Fresh approval needed" in (job.outcome or "")
    assert "approval.renewal" in world.actions()


async def test_after_the_fresh_approval_the_job_goes_on_and_checks_the_step_first(
    world: World,
) -> None:
    await failed_cordon(world)
    close_window(world)
    await world.engine.resume(1, actor="U0ALICE", from_states=HALTED)
    world.kube.edit("Node", "worker-1", lambda n: n["spec"].update(unschedulable=True))
    approve(world, JobState.PENDING_APPROVAL)
    await world.engine.start(1)
    assert world.state() is JobState.SUCCEEDED
    assert set_unschedulable_calls(world) == 1  # it had taken effect: not done again
    assert world.store.steps(1)[0].summary == "worker-1 was already done before the restart"


async def test_a_job_needing_no_approval_retried_after_its_window_runs_on_under_a_new_one(
    world: World,
) -> None:
    await failed_cordon(world, approvals=0, break_glass="disk failing")
    close_window(world)
    await world.engine.resume(1, actor="U0ALICE", from_states=HALTED)
    job = world.store.job(1)
    assert job.state is JobState.SUCCEEDED and world.kube.node("worker-1").unschedulable
    assert job.execution_deadline is not None and job.execution_deadline > utcnow()
    assert "approval.renewal" in world.actions()


async def test_abort_during_a_freeze_still_undoes_what_the_job_changed(world: World) -> None:
    world.kube.add(pod("web-0", node="worker-1"))
    world.kube.fail("evict", 500)  # the drain cordons, then fails evicting
    await failed_job(world, "drain worker-1 --timeout 5s")
    assert world.kube.node("worker-1").unschedulable
    freeze_now(world)
    assert await world.engine.abort(1, actor="U0BOB", from_states=HALTED)
    assert world.state() is JobState.CANCELLED
    assert not world.kube.node("worker-1").unschedulable
    assert "worker-1 uncordoned again" in (world.store.job(1).outcome or "")


async def test_a_retry_of_a_drain_whose_node_got_a_new_bare_pod_goes_back_for_approval(
    world: World,
) -> None:
    world.kube.add(pod("web-0", node="worker-1"))
    world.kube.fail("evict", 500)
    await failed_job(world, "drain worker-1 --timeout 5s --force")
    world.kube.add(pod("debug", node="worker-1", namespace="default", owner=None))
    await world.engine.resume(1, actor="U0ALICE", from_states=HALTED)
    job = world.store.job(1)
    assert job.state is JobState.PENDING_APPROVAL
    assert "new pod(s) that need --force: default/debug" in (job.outcome or "")
    assert job.plan["facts"]["needs_force"] == ["default/debug"]  # what approvers now see
    assert "plan.drift" in world.actions()
