"""Answers to read-only verbs (nodes, status, jobs, job, audit, certs, backups): no approval,
private replies."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Sequence

from bot.audit import AuditLog
from bot.chat import Chat
from bot.clusters import Clusters
from bot.config import ClusterConfig
from bot.lease import jobs_ownership
from bot.markup import echo, escape, mention, outcome
from bot.outbox import outbox_backlog
from bot.read_access import ReadAccess
from bot.render import jobs_owner_lines, slack_backlog_lines
from bot.store import JobState, Store, utcnow
from bot.work import Work
from commands import (
    DEFAULT_AUDIT_LOOKBACK,
    VERB_SPECS,
    AuditCommand,
    Command,
    JobCommand,
    PodsCommand,
)
from playbooks import NodeView, OperationError
from playbooks.backup_files import backups_table, kept_backups
from playbooks.certs_view import CertsSnapshot, certs_answer, observe_certs
from playbooks.pods import pod_view

Answer = Callable[[Command, ClusterConfig, str, str], Work]
RECENT_JOBS_LOOKED_AT = 200  # the newest jobs of every cluster, before keeping the readable
RECENT_JOBS_SHOWN = 15
AUDIT_EVENTS_SHOWN = 30


def cluster_summary(name: str, nodes: list[NodeView]) -> list[str]:
    ready = sum(n.ready for n in nodes)
    cordoned = [n.name for n in nodes if n.unschedulable]
    versions = sorted({n.kubelet_version for n in nodes})
    planes = [n for n in nodes if "control-plane" in n.roles]
    return [
        f"*{name}*: {ready}/{len(nodes)} nodes Ready · kubelet {', '.join(versions)}",
        "Control planes: "
        + ", ".join(f"{n.name} ({'Ready' if n.ready else 'NotReady'})" for n in planes),
        f"Cordoned: {', '.join(cordoned) or 'none'}",
    ]


def node_line(node: NodeView) -> str:
    state = "Ready" if node.ready else "NotReady"
    if node.unschedulable:
        state += ",SchedulingDisabled"
    roles = ",".join(node.roles) or "worker"
    return f"{node.name:<16} {state:<28} {roles:<14} {node.kubelet_version}"


class ReadOnlyAnswers:
    """Answers read from the store and the cluster, said privately to the one who asked."""

    def __init__(
        self,
        *,
        store: Store,
        audit: AuditLog,
        chat: Chat,
        clusters: Clusters,
        reads: ReadAccess,
        warn_days: Sequence[int],
    ) -> None:
        self._reads = reads
        self._store = store
        self._audit = audit
        self._chat = chat
        self._clusters = clusters
        self._warn_days = warn_days
        # The grammar says which verbs only read; each has the method of its name here
        # (`help` is answered on the spot, from the grammar itself). Each is asked of the
        # policy first: reading needs a role unless a rule opens it.
        self.by_verb: dict[str, Answer] = {
            spec.name: self._allowed_first(getattr(self, spec.name))
            for spec in VERB_SPECS
            if spec.read_only and spec.name != "help"
        }

    def _allowed_first(self, answer: Answer) -> Answer:
        async def gated(command: Command, cluster: ClusterConfig, user: str, channel: str) -> None:
            refusal = await self._reads.refusal(command.verb, cluster=cluster.name, user=user)
            if refusal:
                await self._chat.ephemeral(channel, user, refusal)
                return
            await answer(command, cluster, user, channel)

        return gated

    async def _with_nodes(
        self,
        cluster: ClusterConfig,
        user: str,
        channel: str,
        render: Callable[[list[NodeView]], str],
    ) -> None:
        try:
            nodes = await (await self._clusters.handle(cluster.name)).kube.list_nodes()
        except OperationError as error:
            await self._chat.ephemeral(
                channel,
                user,
                f"kubegate could not read cluster {cluster.name}: {escape(error.message)}",
            )
            return
        await self._chat.ephemeral(channel, user, render(nodes))

    async def nodes(
        self, command: Command, cluster: ClusterConfig, user: str, channel: str
    ) -> None:
        def render(nodes: list[NodeView]) -> str:
            header = f"{'NAME':<16} {'STATUS':<28} {'ROLES':<14} VERSION"
            return (
                f"*Nodes of {cluster.name}*\n```"
                + "\n".join([header, *map(node_line, nodes)])
                + "```"
            )

        await self._with_nodes(cluster, user, channel, render)

    async def status(
        self, command: Command, cluster: ClusterConfig, user: str, channel: str
    ) -> None:
        active = [JobState.RUNNING, JobState.PENDING_APPROVAL, JobState.INTERRUPTED]
        running = [j for j in self._store.jobs_in(active) if j.cluster == cluster.name]
        reviews = [
            j for j in self._store.open_reviews() if self._store.job(j).cluster == cluster.name
        ]
        # From the store alone, so said even when the cluster cannot be read (an incident).
        kubegate_lines = [
            "Break-glass reviews pending: " + (", ".join(f"#{j}" for j in reviews) or "none"),
            "Jobs: "
            + (
                ", ".join(f"#{j.id} {j.verb} {escape(j.target)} ({j.state.value})" for j in running)
                or "none active"
            ),
            *self._kubegate_itself(),
        ]
        try:
            nodes = await (await self._clusters.handle(cluster.name)).kube.list_nodes()
        except OperationError as error:
            cluster_lines = [
                f"kubegate could not read cluster {cluster.name}: {escape(error.message)}"
            ]
        else:
            cluster_lines = cluster_summary(cluster.name, nodes)
        await self._chat.ephemeral(channel, user, "\n".join([*cluster_lines, *kubegate_lines]))

    def _kubegate_itself(self) -> list[str]:
        """Which kubegate runs the jobs, and what Slack has not yet received."""
        now = time.time()
        return [
            *jobs_owner_lines(
                jobs_ownership(self._store), now=now, here=(socket.gethostname(), os.getpid())
            ),
            *slack_backlog_lines(outbox_backlog(self._store), now=now),
        ]

    async def jobs(self, command: Command, cluster: ClusterConfig, user: str, channel: str) -> None:
        readable = await self._reads.readable("jobs", user=user)
        jobs = [
            j for j in self._store.recent_jobs(RECENT_JOBS_LOOKED_AT) if readable.shows(j.cluster)
        ]
        lines = [
            f"#{j.id} {j.state.value:<17} {j.verb} {escape(j.target)} · {j.cluster} · "
            f"by {mention(j.requester)}"
            for j in jobs[:RECENT_JOBS_SHOWN]
        ]
        await self._chat.ephemeral(
            channel, user, "*Recent jobs*\n" + ("\n".join(lines) or "none yet")
        )

    async def job(self, command: Command, cluster: ClusterConfig, user: str, channel: str) -> None:
        assert isinstance(command, JobCommand)
        job = self._store.find_job(command.job_id)
        readable = await self._reads.readable("job", user=user)
        if job is None or not readable.shows(job.cluster):
            # The same words whether it does not exist or is not theirs to read.
            await self._chat.ephemeral(
                channel,
                user,
                f"There is no job #{command.job_id} you may read. `/kube jobs` lists recent ones.",
            )
            return
        steps = self._store.steps(job.id)
        lines = [
            f"*Job #{job.id}* {echo(job.command_text)} · {job.state.value} · "
            f"requested by {mention(job.requester)}"
        ]
        lines += [
            f"{s.index + 1}. {escape(s.title)} — {s.state}{': ' + escape(s.summary) if s.summary else ''}"
            for s in steps
        ]
        if job.outcome:
            lines.append(outcome(job.outcome))
        await self._chat.ephemeral(channel, user, "\n".join(lines))

    async def audit(
        self, command: Command, cluster: ClusterConfig, user: str, channel: str
    ) -> None:
        assert isinstance(command, AuditCommand)
        since = utcnow() - (command.since or DEFAULT_AUDIT_LOOKBACK)
        readable = await self._reads.readable("audit", user=user)
        found = self._audit.events(actor=command.user, target=command.node, since=since)
        events = [e for e in found if readable.shows(e["cluster"])][-AUDIT_EVENTS_SHOWN:]
        lines = [
            escape(
                f"{e['time'][:19]} #{e['job_id'] or '-'} {e['action']} by {e['actor']} "
                f"{e['cluster'] or '-'} {e['target'] or ''}"
            )
            for e in events
        ]
        await self._chat.ephemeral(
            channel, user, "*Audit*\n```" + ("\n".join(lines) or "no events") + "```"
        )

    async def pods(self, command: Command, cluster: ClusterConfig, user: str, channel: str) -> None:
        assert isinstance(command, PodsCommand)
        try:
            kube = (await self._clusters.handle(cluster.name)).kube
            if await kube.get_node(command.node) is None:
                await self._chat.ephemeral(
                    channel, user, f"There is no node `{command.node}` in cluster {cluster.name}."
                )
                return
            pods = sorted(
                (pod_view(p) for p in await kube.pods_on(command.node)), key=lambda p: p.key
            )
        except OperationError as error:
            await self._chat.ephemeral(
                channel,
                user,
                f"kubegate could not read cluster {cluster.name}: {escape(error.message)}",
            )
            return
        header = f"{'NAMESPACE/NAME':<48} {'READY':<6} {'STATUS':<12} OWNER"
        lines = [
            f"{p.key:<48} {'1/1' if p.ready else '0/1':<6} {('Terminating' if p.terminating else p.phase):<12} "
            f"{'mirror' if p.mirror else (p.owner_kind or 'none')}"
            for p in pods
        ]
        text = f"*Pods on {command.node}* ({len(pods)})\n```" + "\n".join([header, *lines]) + "```"
        await self._chat.ephemeral(channel, user, text)

    async def certs(
        self, command: Command, cluster: ClusterConfig, user: str, channel: str
    ) -> None:
        warn_within = max(self._warn_days)
        try:
            seen = await observe_certs(await self._clusters.handle(cluster.name))
        except OperationError as error:  # the cluster's API itself could not be reached
            seen = CertsSnapshot(cluster.name, [], error.message)
        answer = certs_answer(seen, now=utcnow(), warn_within=warn_within)
        await self._chat.ephemeral(channel, user, escape(answer))  # from what the hosts printed

    async def backups(
        self, command: Command, cluster: ClusterConfig, user: str, channel: str
    ) -> None:
        directory = (await self._clusters.handle(cluster.name)).backup_dir
        kept = await asyncio.to_thread(kept_backups, directory)
        if not kept:
            text = f"No etcd backups of {cluster.name} are kept yet: `/kube backup etcd` takes one."
        else:
            rows = backups_table(kept, now=time.time())
            text = (
                f"*etcd backups of {cluster.name}* ({len(kept)} kept)\n```"
                + "\n".join(map(escape, rows))
                + "```"
            )
        await self._chat.ephemeral(channel, user, text)
