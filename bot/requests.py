"""A change request, from a parsed command to a job awaiting approval: authorize the requester,
plan against the live cluster, take the locks, store the job, post its root message."""

from __future__ import annotations

from approvals import Decision, PolicyRule, Windows, may_break_glass
from bot.access import Access
from bot.audit import AuditLog
from bot.chat import Chat
from bot.clusters import Clusters
from bot.config import ClusterConfig
from bot.markup import escape
from bot.render import plan_lines, review_card
from bot.roots import RootMessages
from bot.starter import JobStarter
from bot.store import Job, JobState, Store, utcnow
from bot.timing import ChangeCalendar
from commands import Command
from playbooks import PLAYBOOKS, OperationError, Plan, PlanError
from playbooks.upgrade_room import refuse_beyond_cap, with_control_plane_lock


def elsewhere(cluster: ClusterConfig, channel: str) -> str | None:
    """Changes are asked for, announced and approved in the cluster's own channels, where the
    people who watch it see them; from anywhere else (another channel, a DM) they are refused,
    with where to ask. None when the channel is one of the cluster's."""
    if channel in cluster.channels:
        return None
    if not cluster.channels:
        return (
            f"Cluster {cluster.name} has no channel for changes: a kubegate admin adds its "
            "channel IDs under `channels:` in the config."
        )
    where = " or ".join(f"<#{c}>" for c in cluster.channels)
    return f"Changes to cluster {cluster.name} are requested in {where}: ask there."


class ChangeRequests:
    def __init__(
        self,
        *,
        store: Store,
        audit: AuditLog,
        chat: Chat,
        clusters: Clusters,
        access: Access,
        calendar: ChangeCalendar,
        windows: Windows,
        roots: RootMessages,
        starter: JobStarter,
    ) -> None:
        self._store = store
        self._audit = audit
        self._chat = chat
        self._clusters = clusters
        self._access = access
        self._calendar = calendar
        self._windows = windows
        self._roots = roots
        self._starter = starter

    async def request(
        self, command: Command, *, text: str, cluster: ClusterConfig, user: str, channel: str
    ) -> None:
        wrong_place = elsewhere(cluster, channel)
        if wrong_place:
            self._audit.record(
                "refusal",
                actor=user,
                cluster=cluster.name,
                command=text.strip(),
                channel=channel,
                reason="requested outside the cluster's channels",
            )
            await self._chat.ephemeral(channel, user, wrong_place)
            return
        problem = self._calendar.schedule_problem(command)
        if problem:
            await self._chat.ephemeral(channel, user, problem)
            return
        rule = self._access.rule(command.verb, cluster.name)
        decision = await self._may_request(command, rule, user=user, cluster=cluster.name)
        if not decision.allowed:
            self._audit.record(
                "refusal",
                actor=user,
                cluster=cluster.name,
                command=text.strip(),
                reason=decision.reason,
            )
            await self._chat.ephemeral(channel, user, decision.reason)
            return
        plan = await self._plan(command, cluster=cluster, user=user, channel=channel)
        if plan is None:
            return
        if getattr(command, "dry_run", False):
            lines = [
                "*Dry run* — nothing will change.",
                f"*{escape(plan.title)}*",
                *plan_lines(plan),
            ]
            await self._chat.ephemeral(channel, user, "\n".join(lines))
            return
        await self._open_job(command, plan, rule=rule, text=text, user=user, channel=channel)

    async def _may_request(
        self, command: Command, rule: PolicyRule | None, *, user: str, cluster: str
    ) -> Decision:
        roles = await self._access.roles(user)
        decision = self._access.may_request(rule, verb=command.verb, cluster=cluster, roles=roles)
        if not decision.allowed:
            return decision
        # Break-glass needs a role that may use it; without it, a change freeze stops changes.
        if getattr(command, "break_glass", None):
            return may_break_glass(rule, requester_roles=roles)
        strict = self._access.strict_enough(rule, command.verb)
        if not strict.allowed:
            return strict
        freeze = self._calendar.active_freeze(cluster)
        if freeze is None:
            return Decision(True)
        why = f" ({freeze.reason})" if freeze.reason else ""
        return Decision(
            False,
            f"Change freeze `{freeze.name}`{why} until {freeze.end:%Y-%m-%d %H:%M} UTC: "
            'only --break-glass "reason" changes run now.',
        )

    async def _plan(
        self, command: Command, *, cluster: ClusterConfig, user: str, channel: str
    ) -> Plan | None:
        """The plan from the live cluster; None when the requester was told why there is none."""
        try:
            handle = await self._clusters.handle(cluster.name)
            plan = await PLAYBOOKS[command.verb].plan_command(command, handle)
            if not plan.nothing_to_do:
                nodes = await handle.kube.list_nodes()
                refuse_beyond_cap(command, plan, nodes, cluster.max_unavailable)
                plan = with_control_plane_lock(plan, handle.inventory, nodes)
        except PlanError as error:
            await self._chat.ephemeral(channel, user, escape(error.message))
            return None
        except OperationError as error:
            await self._chat.ephemeral(
                channel, user, f"kubegate could not plan this: {escape(error.message)}"
            )
            return None
        if plan.nothing_to_do:
            await self._chat.ephemeral(channel, user, escape(plan.nothing_to_do))
            return None
        return plan

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
        holder = self._store.lock_holder(plan.cluster, plan.locks)
        if holder is not None:
            await self._chat.ephemeral(channel, user, self._locked(plan, holder))
            return
        job = self._store_job(command, plan, rule=rule, text=text, user=user, channel=channel)
        holder = self._store.acquire_locks(job.id, plan.cluster, plan.locks)
        if holder is not None:  # lost a race for the same node
            self._store.transition(
                job.id,
                from_states=[JobState.PENDING_APPROVAL],
                to=JobState.CANCELLED,
                outcome=f"locked by job #{holder}",
            )
            await self._chat.ephemeral(channel, user, f"{plan.target} is locked by job #{holder}.")
            return
        self._audit.record_job(
            "request", job, actor=user, command=job.command_text, channel=channel
        )
        self._audit.record_job(
            "plan",
            job,
            actor="system",
            plan_digest=plan.digest,
            steps=[s.title for s in plan.steps],
            facts=plan.facts,
        )
        await self._announce(job, user=user, channel=channel)

    def _locked(self, plan: Plan, holder: int) -> str:
        """Why the request must wait, naming the job in the way and what it holds."""
        held = self._store.job(holder)
        what = f"{plan.target} is locked by job #{holder} (`{escape(held.command_text)}`)"
        other_control_plane = "control-plane" in plan.locks and held.target != plan.target
        cp_holder = self._store.lock_holder(plan.cluster, ["control-plane"])
        if other_control_plane and cp_holder == holder:
            what = (
                f"Job #{holder} (`{escape(held.command_text)}`) holds the control-plane "
                "lock: kubegate never changes two control planes at once"
            )
        return f"{what}. Wait for it to end or `/kube cancel {holder}`."

    def _store_job(
        self,
        command: Command,
        plan: Plan,
        *,
        rule: PolicyRule | None,
        text: str,
        user: str,
        channel: str,
    ) -> Job:
        now = utcnow()
        break_glass = getattr(command, "break_glass", None)
        return self._store.create_job(
            cluster=plan.cluster,
            verb=plan.verb,
            target=plan.target,
            requester=user,
            channel=channel,
            command_text=text.strip(),
            state=JobState.PENDING_APPROVAL,
            plan=plan.model_dump(mode="json"),
            plan_digest=plan.digest,
            approvals_needed=0
            if break_glass
            else self._access.approvals_needed(rule, command.verb),
            break_glass=break_glass,
            created_at=now,
            approval_deadline=now + self._windows.approval,
        )

    async def _announce(self, job: Job, *, user: str, channel: str) -> None:
        """The root message, then: approvals, or (break-glass, or none needed) the run itself."""
        posted = self._roots.card(job.id)
        ts = await self._chat.post(channel, posted)
        self._store.set_root_ts(job.id, ts, only_if_missing=True)
        if self._roots.card(job.id) != posted:
            # A click landed between the post and storing its ts: show what it changed.
            await self._roots.refresh(job.id)
        if job.break_glass:
            await self._break_glass(job.id, user=user)
        elif job.approvals_needed == 0:
            await self._starter.approve_now(job.id, actor="system")

    async def _break_glass(self, job_id: int, *, user: str) -> None:
        """Runs without approval, loudly, and leaves a review for someone else to acknowledge."""
        job = self._store.job(job_id)
        self._audit.record_job("break-glass", job, actor=user, reason=job.break_glass)
        self._store.open_review(job.id)
        card = review_card(job, approver_roles=self._access.approver_roles(job.verb, job.cluster))
        await self._chat.post(job.channel, card, thread_ts=self._store.job(job.id).root_ts)
        await self._starter.approve_now(job.id, actor=user)
