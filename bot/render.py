"""How jobs read in the channel: the root message, step replies and failure notes; and, for
`/kube status`, who runs them and what Slack has not yet received. Pure."""

from __future__ import annotations

import time
from datetime import datetime

from bot.chat import ABORT, APPROVE, REJECT, RESUME, RETRY, REVIEW, Button, Card
from bot.lease import JobsOwnership
from bot.markup import escape, fenced, mention, outcome
from bot.outbox import Backlog
from bot.store import Job, JobState, StepRecord, VoteRecord, parse_iso
from bot.store_side import Review
from playbooks.plan import Plan

ICONS = {
    JobState.PENDING_APPROVAL: "🟡",
    JobState.APPROVED: "🔵",
    JobState.SCHEDULED: "🕑",
    JobState.RUNNING: "🔵",
    JobState.SUCCEEDED: "✅",
    JobState.FAILED: "❌",
    JobState.CANCELLED: "⚪",
    JobState.REJECTED: "⛔",
    JobState.EXPIRED: "⌛",
    JobState.INTERRUPTED: "⚠️",
}


def hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M UTC")


def plan_lines(plan: Plan) -> list[str]:
    risk = {"low": "🟢 low", "medium": "🟠 medium", "high": "🔴 high"}[plan.risk]
    lines = [f"*Plan* (digest `{plan.short_digest}`) · risk {risk}:"]
    lines += [f"  {index}. {escape(step.title)}" for index, step in enumerate(plan.steps, 1)]
    lines += [f"  • {escape(line)}" for line in plan.preview]
    return lines


def root_card(
    job: Job,
    *,
    votes: list[VoteRecord],
    steps: list[StepRecord],
    approver_roles: list[str],
    review: Review | None = None,
) -> Card:
    plan = Plan.model_validate(job.plan)
    headline = (
        f"{ICONS[job.state]} {escape(plan.title)} · cluster {job.cluster} · job #{job.id} · "
        f"requested by {mention(job.requester)}"
    )
    if job.state is JobState.SUCCEEDED and job.approved_at and job.finished_at:
        took = (job.finished_at - job.approved_at).total_seconds()
        approvers = [
            f"{mention(v.voter)} {hhmm(v.at)}"
            for v in votes
            if v.approve and v.plan_digest == job.plan_digest
        ]
        by = f" · approved by {', '.join(approvers)}" if approvers else ""
        headline = f"{ICONS[job.state]} {escape(plan.title)} · SUCCEEDED in {took:.0f} s{by} · job #{job.id}"
    elif job.state is not JobState.PENDING_APPROVAL:
        headline += f" · *{job.state.value}*"
    if job.break_glass:
        headline = "🚨 BREAK-GLASS · " + headline
    sections = ["\n".join(plan_lines(plan)), _approval_line(job, votes, approver_roles)]
    if job.break_glass:
        sections.insert(0, _break_glass_line(job, review, approver_roles))
    if steps and any(step.state != "pending" for step in steps):
        sections.append("\n".join(_step_line(step) for step in steps))
    if job.state is JobState.SCHEDULED and job.scheduled_for:
        by = (
            f" (must start by {job.execution_deadline:%Y-%m-%d %H:%M} UTC)"
            if job.execution_deadline
            else ""
        )
        sections.append(f"🕑 Scheduled for {job.scheduled_for:%Y-%m-%d %H:%M} UTC{by}")
    if job.outcome:
        sections.append(outcome(job.outcome))
    buttons: list[Button] = []
    # A job that needs no vote (break-glass, or none by policy) starts as soon as it is posted:
    # its message never offers a vote that could not count.
    votes_count = not job.break_glass and job.approvals_needed > 0
    if job.state is JobState.PENDING_APPROVAL and votes_count:
        value = f"{job.id}:{job.plan_digest}"
        buttons = [
            Button("Approve", APPROVE, value, "primary"),
            Button("Reject", REJECT, value, "danger"),
        ]
    return Card(headline=headline, sections=sections, buttons=buttons)


def _break_glass_line(job: Job, review: Review | None, approver_roles: list[str]) -> str:
    roles = " or ".join(approver_roles) or "an approver"
    if review and review.acknowledged_by and review.acknowledged_at:
        status = f"reviewed by {mention(review.acknowledged_by)} {hhmm(review.acknowledged_at)}"
    else:
        status = f"review by {roles} pending"
    return (
        f"<!here> Break-glass by {mention(job.requester)}: “{escape(job.break_glass or '')}”. "
        f"It runs without approval · {status}"
    )


def review_card(job: Job, *, approver_roles: list[str]) -> Card:
    roles = " or ".join(approver_roles) or "an approver"
    return Card(
        headline=f"🚨 Review needed: job #{job.id} ran without approval (break-glass)",
        sections=[
            f"Reason given by {mention(job.requester)}: “{escape(job.break_glass or '')}”. "
            f"Someone from {roles} other than the requester acknowledges it here."
        ],
        buttons=[Button("Acknowledge review", REVIEW, str(job.id), "primary")],
    )


def _approval_line(job: Job, votes: list[VoteRecord], approver_roles: list[str]) -> str:
    current = [vote for vote in votes if vote.plan_digest == job.plan_digest]
    approved = [f"{mention(v.voter)} {hhmm(v.at)}" for v in current if v.approve]
    rejected = [f"{mention(v.voter)} {hhmm(v.at)}" for v in current if not v.approve]
    if rejected:
        return "Rejected by " + ", ".join(rejected)
    if job.break_glass:
        return "Approval skipped: break-glass"
    if job.approvals_needed == 0:
        return "No approval needed by policy"
    parts = []
    if approved:
        parts.append("Approved by " + ", ".join(approved))
    if job.state is JobState.PENDING_APPROVAL:
        missing = job.approvals_needed - len(approved)
        roles = " or ".join(approver_roles) or "an approver"
        parts.append(
            f"Needs {missing} more approval{'s' if missing != 1 else ''} from {roles} · "
            f"approval window ends {hhmm(job.approval_deadline)}"
        )
    return " · ".join(parts)


def _step_line(step: StepRecord) -> str:
    icon = {"pending": "▫️", "running": "⏳", "succeeded": "✅", "failed": "❌"}.get(step.state, "•")
    text = f"{icon} {step.index + 1}. {escape(step.title)}"
    return f"{text} — {escape(step.summary)}" if step.summary else text


def step_card(step: StepRecord, *, total: int) -> Card:
    icon = {"running": "⏳", "succeeded": "✅", "failed": "❌"}.get(step.state, "▫️")
    headline = f"{icon} Step {step.index + 1}/{total}: {escape(step.title)}"
    sections = []
    if step.summary:
        took = ""
        if step.started_at and step.finished_at:
            took = f" ({(step.finished_at - step.started_at).total_seconds():.1f} s)"
        sections.append(escape(step.summary) + took)
    if step.output:
        sections.append(fenced(tail(step.output)))
    return Card(headline=headline, sections=sections)


def tail(output: str, lines: int = 15) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


def failure_card(job: Job, reason: str, *, abort_label: str = "Abort") -> Card:
    value = str(job.id)
    return Card(
        headline=f"❌ Job #{job.id} halted",
        sections=[
            escape(reason),
            f"[Retry step] runs it again; [{abort_label}] undoes what this job changed.",
        ],
        buttons=[
            Button("Retry step", RETRY, value, "primary"),
            Button(abort_label, ABORT, value, "danger"),
        ],
    )


def interrupted_card(job: Job, steps: list[StepRecord]) -> Card:
    unfinished = next((s for s in steps if s.state != "succeeded"), None)
    where = (
        f"at step {unfinished.index + 1}: {escape(unfinished.title)}"
        if unfinished
        else "after its last step"
        if steps
        else "before its first step"
    )
    value = str(job.id)
    return Card(
        headline=f"⚠️ Job #{job.id} was interrupted {where}",
        sections=[
            "kubegate stopped while this job was running. Resume starts at the first unfinished "
            "step after checking whether it already took effect; Abort undoes what this job changed."
        ],
        buttons=[
            Button("Resume", RESUME, value, "primary"),
            Button("Abort", ABORT, value, "danger"),
        ],
    )


def ago(seconds: float) -> str:
    """A duration as an operator reads it at a glance: `3 s`, `2 min`, `5 h`, `2 d`."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def jobs_owner_lines(
    ownership: JobsOwnership | None, *, now: float, here: tuple[str, int]
) -> list[str]:
    """Which kubegate runs the jobs, and which stand by; nothing without a lease (console).
    `here` is the (host, pid) of the kubegate answering."""
    if ownership is None:
        return []
    holder = ownership.live_holder(now)
    standbys = ownership.live_standbys(now)
    if holder is None:
        then = (
            "the kubegate standing by takes them over at its next try"
            if standbys
            else "a restarted kubegate will resume them"
        )
        lines = [f"Jobs run by: no live owner — {then}"]
    else:
        if ownership.renewed_at:
            renewed = f"lease renewed {ago(now - ownership.renewed_at)} ago"
        else:
            renewed = "lease held until " + time.strftime(
                "%H:%M:%S UTC", time.gmtime(holder.expires_at)
            )
        this = ", this one" if (holder.host, holder.pid) == here else ""
        lines = [
            f"Jobs run by: kubegate on host {escape(holder.host)} pid {holder.pid} "
            f"({renewed}{this})"
        ]
    lines += [
        f"Standing by: kubegate on host {escape(standby.host)} pid {standby.pid} "
        f"(runs no job until the lease is free; last asked {ago(now - standby.seen_at)} ago)"
        for standby in standbys
    ]
    return lines


def slack_backlog_lines(backlog: Backlog | None, *, now: float) -> list[str]:
    """What the outbox still holds for Slack; nothing when it is empty."""
    if backlog is None:
        return []
    stored = parse_iso(backlog.oldest_at)
    details = [f"oldest {ago(now - stored.timestamp())} ago"] if stored else []
    if backlog.last_error:
        # Slack's answer or a network error: not kubegate's words, so shown literally.
        details.append(f"last error: {escape(backlog.last_error[:120])}")
    if backlog.next_try_at is not None:
        details.append(f"next try in {ago(backlog.next_try_at - now)}")
    noun = "message" if backlog.waiting == 1 else "messages"
    return [f"Slack: {backlog.waiting} {noun} waiting to be delivered ({'; '.join(details)})"]
