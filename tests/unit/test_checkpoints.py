"""A step's checkpoint survives its failure, so a retry goes on where it stopped; a job killed
before its first step is not said to have stopped after its last."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.render import interrupted_card, step_card
from bot.store import Job, JobState, Store


def running_upgrade(store: Store) -> Job:
    now = datetime.now(UTC)
    return store.create_job(
        cluster="prod",
        verb="upgrade",
        target="cluster",
        requester="U0ALICE",
        channel="C0OPS",
        command_text="upgrade cluster --to v1.31.3",
        state=JobState.RUNNING,
        plan={},
        plan_digest="d1",
        approvals_needed=2,
        created_at=now,
        approval_deadline=now,
    )


def test_a_lost_ssh_connection_does_not_wipe_the_rolling_checkpoint(tmp_path: Path) -> None:
    store = Store(tmp_path / "kubegate.db")
    job = running_upgrade(store)
    store.add_steps(job.id, [("upgrade-workers", "Upgrade 3 worker(s)")])
    store.step_started(job.id, 0)
    wave = {"done": ["worker-1"], "before": {"worker-2": False}}
    store.step_checkpoint(job.id, 0, wave)
    store.step_finished(job.id, 0, ok=False, summary="ssh: connection lost", output="", data={})
    assert store.steps(job.id)[0].data == wave

    store.step_finished(job.id, 0, ok=False, summary="cancel", output="", data={"cancelled": True})
    assert store.steps(job.id)[0].data == {**wave, "cancelled": True}
    store.close()


def test_a_job_killed_right_after_approval_is_interrupted_before_its_first_step(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "kubegate.db")
    job = running_upgrade(store)
    card = interrupted_card(job, store.steps(job.id))
    assert "before its first step" in card.headline
    store.close()


def test_a_retried_step_shows_its_new_attempt_not_the_failure_before_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "kubegate.db")
    job = running_upgrade(store)
    store.add_steps(job.id, [("place-cluster-pki", "Place the cluster's CAs from Vault")])
    store.step_started(job.id, 0)
    store.step_checkpoint(job.id, 0, {"placed": ["ca.crt"]})
    store.step_finished(job.id, 0, ok=False, summary="Vault has nothing there", output="", data={})

    store.step_started(job.id, 0)  # [Retry step]
    [step] = store.steps(job.id)
    card = step_card(step, total=1)
    assert card.headline.startswith("⏳ Step 1/1") and card.sections == []
    assert step.data == {"placed": ["ca.crt"]}  # the checkpoint stays for the retry
    store.close()
