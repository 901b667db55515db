"""The request lifecycle behind any chat: a command becomes a plan, a stored job, a root message.

`Kubegate` is what the Slack and console adapters call. Adapters answer the person at once
with `Ack.text` and hand `Ack.work` (the slow part) to `spawn`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from approvals import (
    Decision,
    Freeze,
    MaintenanceWindow,
    PolicyRule,
    active_freeze,
    approvals_needed,
    may_break_glass,
    may_request,
    roles_of,
    rule_for,
    run_time,
)
from bot.alerts import Alerts
from bot.audit import AuditLog
from bot.chat import Card, Chat
from bot.clusters import Clusters
from bot.config import ClusterConfig, KubegateConfig
from bot.engine import Engine
from bot.jobcontrol import control_job
from bot.readonly import READ_ONLY_ANSWERS
from bot.render import plan_lines, review_card, root_card
from bot.schedule import JobScheduler
from bot.store import Job, JobState, Store, utcnow
from commands import (
    CancelCommand,
    Command,
    CommandError,
    HelpCommand,
    RetryCommand,
    help_text,
    parse_command,
)
from playbooks import PLAYBOOKS, OperationError, Plan, PlanError

log = logging.getLogger(__name__)
ANSWER_SLOTS = 2  # commands being planned or answered at once


@dataclass
class Ack:
    text: str
    work: Coroutine[Any, Any, None] | None = None


class Kubegate:
    def __init__(
        self,
        *,
        config: KubegateConfig,
        store: Store,
        audit: AuditLog,
        chat: Chat,
        clusters: Clusters,
    ) -> None:
        self.config = config
        self.store = store
        self.audit = audit
        self.chat = chat
        self.clusters = clusters
        self.windows = config.windows.as_windows()
        self.engine = Engine(
            store=store,
            audit=audit,
            chat=chat,
            clusters=clusters,
            windows=self.windows,
            refresh_root=self.refresh_root,
            active_freeze=self.active_freeze,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._answer_slots = asyncio.Semaphore(ANSWER_SLOTS)
        self.alerts: Alerts | None = None  # set by the composition root
        self.scheduler = JobScheduler(self.run_scheduled)

    # Background work ------------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def answer_later(self, work: Coroutine[Any, Any, None]) -> None:
        """A command's slow part (planning, reading the cluster). Few run at once, so a burst of
        commands cannot starve the event loop that acknowledges the next ones within Slack's 3 s."""
        task = asyncio.create_task(self._guarded(self._in_turn(work)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until no background work is left (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _in_turn(self, work: Coroutine[Any, Any, None]) -> None:
        async with self._answer_slots:
            await work

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("background work failed")

    # Roles ----------------------------------------------------------------------------------

    async def roles(self, user: str) -> frozenset[str]:
        groups = {m for members in self.config.roles.values() for m in members if m.startswith("S")}
        group_members = {group: await self.chat.group_members(group) for group in groups}
        return roles_of(user, roles=self.config.roles, group_members=group_members)

    def rule(self, verb: str, cluster: str) -> PolicyRule | None:
        return rule_for(self.config.policy, verb=verb, cluster=cluster)

    # Commands -------------------------------------------------------------------------------

    def receive_command(self, *, user: str, channel: str, text: str) -> Ack:
        """Parse now (pure and fast); plan and store in the background."""
        try:
            command = parse_command(text)
        except CommandError as error:
            return Ack(error.text)
        if isinstance(command, HelpCommand):
            return Ack(help_text(command.topic))
        cluster = self.clusters.resolve(requested=command.cluster, channel=channel)
        if isinstance(cluster, str):
            return Ack(cluster)
        if command.verb in READ_ONLY_ANSWERS:
            answer = READ_ONLY_ANSWERS[command.verb]
            return Ack("Looking…", answer(self, command, cluster, user, channel))
        if isinstance(command, CancelCommand | RetryCommand):
            return Ack(
                f"Looking at job #{command.job_id}…",
                control_job(self, command, user=user, channel=channel),
            )
        if command.verb not in PLAYBOOKS:
            return Ack(
                f"`{command.verb}` is not available yet in this version of kubegate. "
                "`/kube help` lists what is."
            )
        return Ack(
            f"Planning `{text.strip()}` on {cluster.name}…",
            self._request(command, text=text, cluster=cluster, user=user, channel=channel),
        )

    async def _request(
        self, command: Command, *, text: str, cluster: ClusterConfig, user: str, channel: str
    ) -> None:
        problem = self.schedule_problem(command)
        if problem:
            await self.chat.ephemeral(channel, user, problem)
            return
        rule = self.rule(command.verb, cluster.name)
        roles = await self.roles(user)
        decision = may_request(rule, verb=command.verb, cluster=cluster.name, requester_roles=roles)
        if decision.allowed:
            decision = self._break_glass_or_freeze(command, rule, roles, cluster.name)
        if not decision.allowed:
            await self._refuse(
                decision, user=user, channel=channel, cluster=cluster.name, text=text
            )
            return
        try:
            handle = await self.clusters.handle(cluster.name)
            plan = await PLAYBOOKS[command.verb].plan(command, handle)
        except PlanError as error:
            await self.chat.ephemeral(channel, user, error.message)
            return
        except OperationError as error:
            await self.chat.ephemeral(
                channel, user, f"kubegate could not plan this: {error.message}"
            )
            return
        if plan.nothing_to_do:
            await self.chat.ephemeral(channel, user, plan.nothing_to_do)
            return
        if getattr(command, "dry_run", False):
            lines = ["*Dry run* — nothing will change.", f"*{plan.title}*", *plan_lines(plan)]
            await self.chat.ephemeral(channel, user, "\n".join(lines))
            return
        await self._open_job(command, plan, rule=rule, text=text, user=user, channel=channel)

    async def _open_job(
        self,
        command: Command,
        plan: Plan,
        *,
        rule: PolicyRule | None,
        text: str,
        user: str,
        channel: str,
    ) -> None:
        holder = self.store.lock_holder(plan.cluster, plan.locks)
        if holder is not None:
            await self.chat.ephemeral(
                channel,
                user,
                f"{plan.target} is locked by job #{holder}: "
                f"wait for it to end or `/kube cancel {holder}`.",
            )
            return
        now = utcnow()
        break_glass = getattr(command, "break_glass", None)
        job = self.store.create_job(
            cluster=plan.cluster,
            verb=plan.verb,
            target=plan.target,
            requester=user,
            channel=channel,
            command_text=text.strip(),
            state=JobState.PENDING_APPROVAL,
            plan=plan.model_dump(mode="json"),
            plan_digest=plan.digest,
            approvals_needed=0 if break_glass else approvals_needed(rule, verb=command.verb),
            break_glass=break_glass,
            created_at=now,
            approval_deadline=now + self.windows.approval,
        )
        holder = self.store.acquire_locks(job.id, plan.cluster, plan.locks)
        if holder is not None:  # lost a race for the same node
            self.store.transition(
                job.id,
                from_states=[JobState.PENDING_APPROVAL],
                to=JobState.CANCELLED,
                outcome=f"locked by job #{holder}",
            )
            await self.chat.ephemeral(channel, user, f"{plan.target} is locked by job #{holder}.")
            return
        self.audit.record_job("request", job, actor=user, command=job.command_text, channel=channel)
        self.audit.record_job("plan", job, actor="system", plan_digest=plan.digest,
                              steps=[s.title for s in plan.steps], facts=plan.facts)  # fmt: skip
        await self._announce(job, user=user, channel=channel)

    async def _announce(self, job: Job, *, user: str, channel: str) -> None:
        """The root message, then: approvals, or (break-glass, or none needed) the run itself."""
        posted = self._root_card(job.id)
        ts = await self.chat.post(channel, posted)
        self.store.set_root_ts(job.id, ts, only_if_missing=True)
        if self._root_card(job.id) != posted:
            # A click landed between the post and storing its ts: show what it changed.
            await self.refresh_root(job.id)
        if job.break_glass:
            await self._break_glass(job.id, user=user)
        elif job.approvals_needed == 0:
            await self.approve_now(job.id, actor="system")

    async def _break_glass(self, job_id: int, *, user: str) -> None:
        """Runs without approval, loudly, and leaves a review for someone else to acknowledge."""
        job = self.store.job(job_id)
        self.audit.record_job("break-glass", job, actor=user, reason=job.break_glass)
        self.store.open_review(job.id)
        rule = self.rule(job.verb, job.cluster)
        await self.chat.post(job.channel, review_card(job, approver_roles=list(rule.approvers) if rule else []),
                             thread_ts=self.store.job(job.id).root_ts)  # fmt: skip
        await self.approve_now(job.id, actor=user)

    def _break_glass_or_freeze(self, command: Command, rule: PolicyRule | None, roles: frozenset[str],
                               cluster: str) -> Decision:  # fmt: skip
        """Break-glass needs a role that may use it; without it, a change freeze stops changes."""
        if getattr(command, "break_glass", None):
            return may_break_glass(rule, requester_roles=roles)
        freeze = self.active_freeze(cluster)
        if freeze is None:
            return Decision(True)
        why = f" ({freeze.reason})" if freeze.reason else ""
        return Decision(False, f"Change freeze `{freeze.name}`{why} until {freeze.end:%Y-%m-%d %H:%M} UTC: "
                               'only --break-glass "reason" changes run now.')  # fmt: skip

    def active_freeze(self, cluster: str) -> Freeze | None:
        freezes = [f.as_freeze() for f in self.config.freezes]
        return active_freeze(freezes, now=utcnow(), cluster=cluster)

    async def _refuse(
        self, decision: Decision, *, user: str, channel: str, cluster: str, text: str
    ) -> None:
        self.audit.record(
            "refusal", actor=user, cluster=cluster, command=text.strip(), reason=decision.reason
        )
        await self.chat.ephemeral(channel, user, decision.reason)

    async def approve_now(self, job_id: int, *, actor: str) -> None:
        """Quorum met: record the approval, then run now or set the job's timer."""
        now = utcnow()
        job = self.store.job(job_id)
        when = run_time(now=now, at=getattr(job.command, "at", None), window=self._window_of(job),
                        execution=self.windows.execution)  # fmt: skip
        later = when is not None and when.start > now
        if not self.store.transition(
            job_id, from_states=[JobState.PENDING_APPROVAL],
            to=JobState.SCHEDULED if later else JobState.APPROVED, approved_at=now,
            execution_deadline=when.must_start_by if when else now + self.windows.execution,
            scheduled_for=when.start if when else None,
        ):  # fmt: skip
            return
        job = self.store.job(job_id)
        approvers = sorted(
            {
                v.voter
                for v in self.store.votes(job_id)
                if v.approve and v.plan_digest == job.plan_digest
            }
        )
        self.audit.record_job(
            "approval", job, actor=actor, approvers=approvers, plan_digest=job.plan_digest
        )
        if later and when is not None:
            self.audit.record_job("scheduled", job, actor="system", start=when.start.isoformat(),
                                  must_start_by=when.must_start_by.isoformat())  # fmt: skip
            self.scheduler.run_at(job.id, when.start)
            await self.refresh_root(job_id)
            return
        await self.engine.start(job_id)  # it updates the root message as the job starts

    async def run_scheduled(self, job_id: int) -> None:
        """A scheduled job's time has come (its timer, or a restart that found it due)."""
        if self.store.transition(job_id, from_states=[JobState.SCHEDULED], to=JobState.APPROVED):
            await self.engine.start(job_id)

    def restore_timers(self) -> None:
        for job in self.store.jobs_in([JobState.SCHEDULED]):
            self.scheduler.run_at(job.id, job.scheduled_for or utcnow())

    def schedule_problem(self, command: Command) -> str | None:
        """Why `--at`/`--window` cannot be honoured, in words; None when they can (or are absent)."""
        at, window = getattr(command, "at", None), getattr(command, "window", None)
        if at is not None and at <= utcnow():
            return f"--at {at:%Y-%m-%d %H:%M} UTC is in the past; pick a later time."
        if window is not None and window not in self.config.maintenance_windows:
            known = ", ".join(sorted(self.config.maintenance_windows)) or "none are configured"
            return f"There is no maintenance window `{window}` (known: {known})."
        return None

    def _window_of(self, job: Job) -> MaintenanceWindow | None:
        name = getattr(job.command, "window", None)
        window = self.config.maintenance_windows.get(name) if name else None
        return window.as_window(name) if window and name else None

    # Root message ---------------------------------------------------------------------------

    def _root_card(self, job_id: int) -> Card:
        job = self.store.job(job_id)
        rule = self.rule(job.verb, job.cluster)
        return root_card(
            job,
            review=self.store.review(job_id),
            votes=self.store.votes(job_id),
            steps=self.store.steps(job_id),
            approver_roles=list(rule.approvers) if rule else [],
        )

    async def refresh_root(self, job_id: int) -> None:
        job = self.store.job(job_id)
        if job.root_ts:
            await self.chat.update(job.channel, job.root_ts, self._root_card(job_id))
