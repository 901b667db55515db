"""Planning again at a job's start (drift re-check) holds the control-plane lock as the request's
planning does: a drifted change to a control plane goes back for approval holding it, and never
while another job holds it (fake tier: in-memory API, SQLite in a temp dir)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from approvals import Windows
from bot.audit import AuditLog
from bot.engine import Engine
from bot.redact import Redactor
from bot.store import JobState, Store, utcnow
from commands import parse_command
from playbooks import PLAYBOOKS, ClusterHandle
from tests.fakes import FakeKube, cluster_of, node, pod
from tests.fakes.chat import RecordingChat


class OneCluster:
    def __init__(self, kube: FakeKube) -> None:
        self.cluster = cluster_of(kube)

    async def handle(self, name: str) -> ClusterHandle:
        return self.cluster


def engine_on(store: Store, kube: FakeKube) -> Engine:
    async def refresh_root(job_id: int) -> None:
        return None

    return Engine(
        store=store,
        audit=AuditLog(store, Redactor()),
        chat=RecordingChat(),
        clusters=OneCluster(kube),
        windows=Windows(approval=timedelta(minutes=30), execution=timedelta(hours=2)),
        refresh_root=refresh_root,
    )


async def approved_job(store: Store, kube: FakeKube, text: str, *, target: str) -> int:
    """A job approved on the plan its playbook alone makes: without the control-plane lock,
    as a kubegate from before that rule stored it."""
    command = parse_command(text)
    plan = await PLAYBOOKS[command.verb].plan_command(command, cluster_of(kube))
    assert "control-plane" not in plan.locks
    now = utcnow()
    job = store.create_job(
        cluster="test",
        verb=command.verb,
        target=target,
        requester="U0ALICE",
        channel="C0OPS",
        command_text=text,
        state=JobState.APPROVED,
        plan=plan.model_dump(mode="json"),
        plan_digest=plan.digest,
        approvals_needed=1,
        created_at=now,
        approval_deadline=now + timedelta(minutes=30),
    )
    store.set_root_ts(job.id, f"0.00{job.id}")
    assert store.acquire_locks(job.id, "test", plan.locks) is None
    store.transition(
        job.id,
        from_states=[JobState.APPROVED],
        to=JobState.APPROVED,
        approved_at=now,
        execution_deadline=now + timedelta(hours=2),
    )
    return job.id


def control_plane_cluster() -> FakeKube:
    return FakeKube(
        node("cp-1", roles=("control-plane",)),
        node("cp-2", roles=("control-plane",)),
        node("worker-1"),
        pod("web-0", node="cp-1"),
    )


async def test_a_drifted_drain_of_a_control_plane_goes_back_for_approval_holding_its_lock(
    tmp_path: Path,
) -> None:
    store, kube = Store(tmp_path / "kubegate.db"), control_plane_cluster()
    job_id = await approved_job(store, kube, "drain cp-1 --force", target="cp-1")
    kube.add(pod("debug", node="cp-1", namespace="default", owner=None))  # drift

    await engine_on(store, kube).start(job_id)

    job = store.job(job_id)
    assert job.state is JobState.PENDING_APPROVAL
    assert "control-plane" in job.plan["locks"]  # what approvers approve again
    assert store.lock_holder("test", ["control-plane"]) == job_id  # and what the store holds
    assert not kube.node("cp-1").unschedulable
    store.close()


async def test_a_drifted_control_plane_change_halts_while_another_job_holds_the_lock(
    tmp_path: Path,
) -> None:
    store, kube = Store(tmp_path / "kubegate.db"), control_plane_cluster()
    job_id = await approved_job(store, kube, "drain cp-1 --force", target="cp-1")
    other = await approved_job(store, kube, "cordon cp-2", target="cp-2")
    assert store.acquire_locks(other, "test", ["control-plane"]) is None
    kube.add(pod("debug", node="cp-1", namespace="default", owner=None))  # drift

    await engine_on(store, kube).start(job_id)

    job = store.job(job_id)
    assert job.state is JobState.FAILED
    assert f"needs a lock job #{other} (`cordon cp-2`) holds" in (job.outcome or "")
    assert not kube.node("cp-1").unschedulable  # nothing ran
    assert store.lock_holder("test", ["control-plane"]) == other
    store.close()


async def test_a_drain_of_a_worker_that_drifts_takes_no_control_plane_lock(
    tmp_path: Path,
) -> None:
    store, kube = Store(tmp_path / "kubegate.db"), control_plane_cluster()
    kube.add(pod("web-1", node="worker-1"))
    job_id = await approved_job(store, kube, "drain worker-1 --force", target="worker-1")
    kube.add(pod("debug", node="worker-1", namespace="default", owner=None))  # drift

    await engine_on(store, kube).start(job_id)

    job = store.job(job_id)
    assert job.state is JobState.PENDING_APPROVAL
    assert "control-plane" not in job.plan["locks"]
    assert store.lock_holder("test", ["control-plane"]) is None
    store.close()
