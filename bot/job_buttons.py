"""Which job a button belongs to, beyond doubt: each job gets a random nonce, stored with it,
and every button of a job carries it; a click counts only when its nonce is the job's.

A job id is a small counter anyone can guess, so a click built by hand (a forged payload, a
button copied into another message) must not act on a job. Cards are stamped where they leave
for the chat (`StampedChat`), so renderers and the engine never handle nonces themselves.
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
from dataclasses import dataclass, replace

from bot.chat import ABORT, APPROVE, REJECT, RESUME, RETRY, REVIEW, Button, Card, Chat
from bot.store import Store

JOB_BUTTONS = (APPROVE, REJECT, RESUME, RETRY, ABORT, REVIEW)
# Side tables on the store's own connection: they live and are backed up with the job.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS job_nonces (
  job_id INTEGER PRIMARY KEY REFERENCES jobs(id), nonce TEXT NOT NULL)""",
    # Every message kubegate posted with a job's buttons: the root and its thread's cards.
    """CREATE TABLE IF NOT EXISTS job_messages (
  job_id INTEGER NOT NULL REFERENCES jobs(id), ts TEXT NOT NULL, PRIMARY KEY (job_id, ts))""",
)


@dataclass(frozen=True)
class JobButtonValue:
    """A job button's value, `<job id>:<plan digest>:<nonce>` (the digest only on votes)."""

    job_id: int | None
    digest: str
    nonce: str

    @classmethod
    def parse(cls, value: str) -> JobButtonValue:
        job_text, _, rest = value.partition(":")
        digest, _, nonce = rest.partition(":")
        return cls(int(job_text) if job_text.isdigit() else None, digest, nonce)

    def __str__(self) -> str:
        return f"{self.job_id}:{self.digest}:{self.nonce}"


class JobNonces:
    def __init__(self, store: Store) -> None:
        self._store = store
        with store.transaction() as conn:
            for statement in SCHEMA:
                conn.execute(statement)

    def of(self, job_id: int) -> str:
        """The job's nonce, made the first time it is asked for."""
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO job_nonces (job_id, nonce) VALUES (?, ?)",
                [job_id, secrets.token_urlsafe(12)],
            )
            row = conn.execute("SELECT nonce FROM job_nonces WHERE job_id = ?", [job_id]).fetchone()
        return str(row[0])

    def posted(self, job_id: int, ts: str) -> None:
        with self._store.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO job_messages VALUES (?, ?)", [job_id, ts])

    def is_own_message(self, job_id: int, ts: str | None) -> bool:
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT 1 FROM job_messages WHERE job_id = ? AND ts = ?", [job_id, ts]
            ).fetchone()
            if row is None and _has_outbox(conn):
                # A thread card sent through the outbox was recorded under its placeholder
                # (`outbox:<row>`): Slack's click names the ts it got once delivered.
                row = conn.execute(
                    "SELECT 1 FROM job_messages m JOIN outbox o ON m.ts = 'outbox:' || o.id "
                    "WHERE m.job_id = ? AND o.state = 'delivered' AND o.delivered_ts = ?",
                    [job_id, ts],
                ).fetchone()
        return row is not None

    def matches(self, job_id: int, nonce: str) -> bool:
        with self._store.transaction() as conn:
            row = conn.execute("SELECT nonce FROM job_nonces WHERE job_id = ?", [job_id]).fetchone()
        return row is not None and hmac.compare_digest(str(row[0]), nonce)


class StampedChat:
    """A Chat whose job buttons leave carrying their job's nonce; everything else passes."""

    def __init__(self, chat: Chat, nonces: JobNonces) -> None:
        self._chat = chat
        self._nonces = nonces

    def stamped(self, card: Card) -> Card:
        if not any(button.action_id in JOB_BUTTONS for button in card.buttons):
            return card
        return replace(card, buttons=[self._stamp(button) for button in card.buttons])

    def _stamp(self, button: Button) -> Button:
        if button.action_id not in JOB_BUTTONS:
            return button
        value = JobButtonValue.parse(button.value)
        if value.job_id is None:
            return button
        nonce = self._nonces.of(value.job_id)
        return replace(button, value=str(JobButtonValue(value.job_id, value.digest, nonce)))

    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str:
        ts = await self._chat.post(channel, self.stamped(card), thread_ts=thread_ts)
        for job_id in _jobs_of(card):
            self._nonces.posted(job_id, ts)
        return ts

    async def update(self, channel: str, ts: str, card: Card) -> None:
        await self._chat.update(channel, ts, self.stamped(card))

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        await self._chat.ephemeral(channel, user, text)

    async def ephemeral_card(self, channel: str, user: str, card: Card) -> None:
        await self._chat.ephemeral_card(channel, user, self.stamped(card))

    async def group_members(self, group_id: str) -> set[str]:
        return await self._chat.group_members(group_id)

    async def upload(self, channel: str, thread_ts: str, *, title: str, content: str) -> None:
        await self._chat.upload(channel, thread_ts, title=title, content=content)


def _jobs_of(card: Card) -> set[int]:
    values = [JobButtonValue.parse(b.value) for b in card.buttons if b.action_id in JOB_BUTTONS]
    return {value.job_id for value in values if value.job_id is not None}


def misplaced_click(
    job_id: int,
    *,
    job_channel: str,
    root_ts: str | None,
    channel: str,
    message_ts: str | None,
    action_id: str,
    nonce_ok: bool,
    own_message: bool,
) -> str | None:
    """Why a click on a job's button cannot count, for the audit log; None when it can.

    Votes count only on the job's own root message; [Retry step], [Abort], [Resume] and
    [Acknowledge review] on a message kubegate posted with that job's buttons (`own_message`:
    its thread's cards).
    """
    if not nonce_ok:
        return f"button value does not carry job #{job_id}'s nonce"
    if channel != job_channel:
        return f"clicked in {channel}, not in job #{job_id}'s channel {job_channel}"
    if action_id in (APPROVE, REJECT) and message_ts != root_ts:
        return f"vote clicked on message {message_ts}, not on job #{job_id}'s root message"
    if action_id not in (APPROVE, REJECT) and message_ts != root_ts and not own_message:
        return f"clicked on message {message_ts}, which is not one of job #{job_id}'s"
    return None


def _has_outbox(conn: sqlite3.Connection) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'"
    ).fetchone()
    return found is not None
