"""The front door the chat adapters (Slack, console) call: a typed command, a clicked button.

A command is parsed at once (pure and fast) and answered with `Ack.text`; its slow part
(`Ack.work`: planning, reading the cluster, job control) runs in the background, and if it
fails, the person who asked hears so with a reference into the log.
"""

from __future__ import annotations

import contextlib

from bot.actions import Clicks
from bot.clusters import Clusters
from bot.config import ClusterConfig
from bot.job_buttons import JOB_BUTTONS
from bot.jobcontrol import JobControl
from bot.markup import echo, escape
from bot.readonly import ReadOnlyAnswers
from bot.requests import ChangeRequests
from bot.slack_health import SlackHealth
from bot.work import Ack, Asker, Background, Work
from commands import (
    CancelCommand,
    Command,
    CommandError,
    HelpCommand,
    RetryCommand,
    help_text,
    parse_command,
)
from playbooks import PLAYBOOKS

STORE_ONLY = frozenset({"jobs", "job", "audit", "cancel", "retry"})


class CommandDesk:
    """`/kube …` in, an immediate answer out, with the slow part to run after it."""

    def __init__(
        self,
        *,
        clusters: Clusters,
        answers: ReadOnlyAnswers,
        job_control: JobControl,
        requests: ChangeRequests,
        background: Background,
        slack: SlackHealth | None = None,
    ) -> None:
        self._slack = slack
        self._clusters = clusters
        self._answers = answers
        self._job_control = job_control
        self._requests = requests
        self._background = background

    def receive_command(self, *, user: str, channel: str, text: str) -> Ack:
        ack = self._receive(user=user, channel=channel, text=text)
        # While Slack refuses kubegate's messages, the acknowledgement is the one answer that
        # still reaches the person: it says why nothing else may follow.
        note = self._slack.note() if self._slack is not None else None
        return Ack(f"{ack.text}\n{note}", ack.work) if note else ack

    def _receive(self, *, user: str, channel: str, text: str) -> Ack:
        try:
            command = parse_command(text)
        except CommandError as error:
            # A refusal may quote what was typed: shown literally, never as a mention or link.
            return Ack(escape(error.text))
        if isinstance(command, HelpCommand):
            return Ack(escape(help_text(command.topic)))
        cluster = self._clusters.resolve(requested=command.cluster, channel=channel)
        if isinstance(cluster, str):
            return Ack(escape(cluster))
        typed = text.strip()
        shown = echo(typed)

        def reported(work: Work, doing: str, job_id: int | None = None) -> Work:
            asker = Asker(user, channel, typed, doing, job_id)
            return self._background.reported(work, asker)

        answer = self._answers.by_verb.get(command.verb)
        if answer is not None:
            work = reported(answer(command, cluster, user, channel), f"answering `{shown}`")
            return self._from_store(command, Ack("Looking…", work))
        if isinstance(command, CancelCommand | RetryCommand):
            work = self._job_control.control(command, user=user, channel=channel)
            doing = f"{command.verb} of job #{command.job_id}"
            ack = Ack(f"Looking at job #{command.job_id}…", reported(work, doing, command.job_id))
            return self._from_store(command, ack)
        return self._change(command, cluster, user=user, channel=channel, text=typed)

    def _from_store(self, command: Command, ack: Ack) -> Ack:
        """An answer that needs only the store runs at once, never queued behind answers
        waiting on a cluster (a hanging API server must not delay `/kube jobs` or a cancel)."""
        if command.verb not in STORE_ONLY or ack.work is None:
            return ack
        self._background.answer_now(ack.work)
        return Ack(ack.text)

    def _change(
        self, command: Command, cluster: ClusterConfig, *, user: str, channel: str, text: str
    ) -> Ack:
        if command.verb not in PLAYBOOKS:
            return Ack(
                f"`{command.verb}` is not available yet in this version of kubegate. "
                "`/kube help` lists what is."
            )
        work = self._requests.request(
            command, text=text, cluster=cluster, user=user, channel=channel
        )
        shown = echo(text)
        asker = Asker(user, channel, text, f"planning `{shown}`")
        return Ack(f"Planning `{shown}` on {cluster.name}…", self._background.reported(work, asker))


class Kubegate:
    """What the chat adapters hold: commands, clicks, and the background work they start."""

    def __init__(self, *, desk: CommandDesk, clicks: Clicks, background: Background) -> None:
        self._desk = desk
        self._clicks = clicks
        self._background = background

    def receive_command(self, *, user: str, channel: str, text: str) -> Ack:
        return self._desk.receive_command(user=user, channel=channel, text=text)

    async def click(
        self, *, user: str, channel: str, action_id: str, value: str, message_ts: str | None = None
    ) -> None:
        """Handle a button click; a failure of ours is told to the clicker with a log ref."""
        job_text = value.partition(":")[0]
        job_id = int(job_text) if job_text.isdigit() and action_id in JOB_BUTTONS else None
        button = action_id.removeprefix("kubegate.").replace(".", " ")
        about = f" on job #{job_id}" if job_id is not None else ""
        asker = Asker(
            user,
            channel,
            f"click {action_id} {value}",
            f"handling the {button} click{about}",
            job_id,
        )
        work = self._clicks.handle(
            user=user, channel=channel, action_id=action_id, value=value, message_ts=message_ts
        )
        await self._background.reported(work, asker)

    def spawn(self, work: Work) -> None:
        self._background.spawn(work)

    def answer_later(self, work: Work) -> None:
        self._background.answer_later(work)

    def acknowledging(self) -> contextlib.AbstractContextManager[None]:
        """Held while a chat request is being acknowledged: answers wait for it (bot/work.py)."""
        return self._background.acknowledging()

    async def idle(self) -> None:
        """Wait until no background work is left (tests and shutdown)."""
        await self._background.idle()

    async def answered(self) -> None:
        """Wait until every command received so far is answered, while jobs go on (benchmarks)."""
        await self._background.answered()
