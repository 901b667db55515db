"""Job control and the audit log: `jobs`, `job`, `cancel`, `retry`, `audit`."""

from __future__ import annotations

from commands._models import (
    AuditCommand,
    CancelCommand,
    Command,
    JobCommand,
    JobsCommand,
    RetryCommand,
)
from commands._spec import Arguments, Group, OptionSpec, VerbSpec

_JOB_ID = "a job id, e.g. 42 or #42"


def _build_jobs(args: Arguments) -> Command:
    args.take()
    return args.build(JobsCommand)


def _build_job(args: Arguments) -> Command:
    (job_id,) = args.take(_JOB_ID)
    return args.build(JobCommand, job_id=job_id)


def _build_cancel(args: Arguments) -> Command:
    (job_id,) = args.take(_JOB_ID)
    return args.build(CancelCommand, job_id=job_id)


def _build_retry(args: Arguments) -> Command:
    (job_id,) = args.take(_JOB_ID)
    return args.build(RetryCommand, job_id=job_id)


def _build_audit(args: Arguments) -> Command:
    args.take()
    return args.build(AuditCommand)


JOBS = VerbSpec(
    name="jobs",
    group=Group.JOBS,
    synopsis="jobs",
    summary="list recent and running jobs with their state",
    usage="/kube jobs",
    build=_build_jobs,
    examples=("/kube jobs",),
    reaches="reads kubegate's own records",
)
JOB = VerbSpec(
    name="job",
    group=Group.JOBS,
    synopsis="job <id>",
    summary="one job: its plan, approvals, steps and outputs",
    usage="/kube job <id>",
    build=_build_job,
    examples=("/kube job 42", "/kube job #42"),
    reaches="reads kubegate's own records",
)
CANCEL = VerbSpec(
    name="cancel",
    group=Group.JOBS,
    synopsis="cancel <id>",
    summary="stop a job that is waiting, scheduled or running",
    usage="/kube cancel <id>",
    build=_build_cancel,
    examples=("/kube cancel 42",),
    default_approvals=None,
    acts_on_jobs=True,
    reaches="stops the job after its current step; undoes what the job itself started "
    "(e.g. uncordons a node it cordoned)",
)
RETRY = VerbSpec(
    name="retry",
    group=Group.JOBS,
    synopsis="retry <id>",
    summary="run a failed job again from the step that failed",
    usage="/kube retry <id>",
    build=_build_retry,
    examples=("/kube retry 42",),
    default_approvals=None,
    acts_on_jobs=True,
    reaches="runs the job's remaining steps again, after re-checking the cluster",
)
AUDIT = VerbSpec(
    name="audit",
    group=Group.JOBS,
    synopsis="audit [--since 24h] [--user U…] [--node N]",
    summary="who asked for, approved and ran what",
    usage="/kube audit [--since DURATION] [--user USER_ID] [--node NODE]",
    build=_build_audit,
    options=(
        OptionSpec(
            "--since",
            "since",
            "how far back to look: 30m, 24h, 7d, …",
            value_name="DURATION",
            default="24h",
            example="--since 24h",
        ),
        OptionSpec(
            "--user",
            "user",
            "only what this person did, by Slack user ID (U… or W…) or @mention",
            value_name="USER_ID",
            example="--user U024BE7LH",
        ),
        OptionSpec(
            "--node",
            "node",
            "only what touched this node",
            value_name="NODE",
            example="--node worker-1",
        ),
    ),
    examples=("/kube audit --since 7d --node worker-1", "/kube audit --user U024BE7LH"),
    reaches="reads the audit log",
)

JOB_VERBS = (JOBS, JOB, CANCEL, RETRY, AUDIT)
