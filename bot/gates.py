"""The gates every start of a job passes: the first start, a retry, a resume after a restart.

Pure decisions from the job, the clock and the active freeze; the engine acts on them. Drift
against the live cluster is the third gate; it needs the cluster, so the engine checks it after
these pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from approvals import Freeze, within
from bot.store import Job, StepRecord


class Stop(Enum):
    REFUSE = "refuse"  # a retry now is not allowed: the job stays as it is (halted)
    HALT = "halt"  # the job halts (FAILED) with the reason; a retry may follow later
    EXPIRE = "expire"  # the job never ran and its time is over: it ends EXPIRED
    REAPPROVE = "reapprove"  # back to PENDING_APPROVAL: earlier votes no longer count


@dataclass(frozen=True)
class Gate:
    stop: Stop
    reason: str


def gate(
    job: Job, *, now: datetime, freeze: Freeze | None, started: bool, retry: bool
) -> Gate | None:
    """Why the job may not run now, or None.

    `started`: some step of it already ran; `retry`: a person asked to run a halted job again
    (/kube retry, [Retry step], [Resume]) rather than its approval starting it.
    """
    if freeze is not None and not job.break_glass:
        until = f"Change freeze `{freeze.name}` until {freeze.end:%Y-%m-%d %H:%M} UTC"
        if retry:
            return Gate(
                Stop.REFUSE,
                f"{until}: job #{job.id} was not retried and nothing was changed; it stays "
                f"{job.state.value.lower()}. Retry after the freeze ends (the retry will need a "
                "fresh approval if the execution window has closed by then), or abort it to "
                "undo what it changed.",
            )
        return Gate(Stop.HALT, f"{until}: nothing was changed. Retry after it ends.")
    if job.execution_deadline and not within(now, job.execution_deadline):
        closed = f"The execution window closed at {job.execution_deadline:%Y-%m-%d %H:%M} UTC"
        if not started and not retry:
            return Gate(Stop.EXPIRE, "The execution window closed before the job could start.")
        return Gate(
            Stop.REAPPROVE,
            f"{closed}: running job #{job.id} again needs a fresh approval (earlier votes no "
            "longer count). Once approved it continues at its first unfinished step.",
        )
    return None


def started(records: list[StepRecord]) -> bool:
    """Some step of the job already ran (or began to): a retry goes on where it stopped."""
    return any(record.state != "pending" for record in records)


def first_unfinished(records: list[StepRecord]) -> int:
    return next((r.index for r in records if r.state != "succeeded"), len(records))


def changed(changes: list[str]) -> str:
    return "The cluster changed since approval: " + "; ".join(changes) + "."
