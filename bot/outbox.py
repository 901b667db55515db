"""The outbox: a job's messages are stored first and delivered to Slack later, so a job never
waits on Slack.

`OutboxChat` is the Chat the engine, the step runner and the root messages speak to: `post`,
`update` and `upload` only write a row (microseconds, in the job's database) and return at once;
`bot.outbox_delivery` sends the rows in order, per thread, retrying with backoff and honouring
Retry-After, across restarts. A post not yet delivered has no Slack ts: it is named by a
placeholder (`outbox:<row id>`) that later rows may use (an update of that reply, a reply in
that thread), resolved when they are sent. Updates of one message not yet sent are coalesced:
only the newest content goes out. Ephemerals and user-group lookups answer a person now and go
straight to Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from bot.chat import Button, Card, Chat
from bot.store import Store, iso, utcnow

PLACEHOLDER = "outbox:"
UNSENT = "unsent"  # the ts of a message that could be neither stored nor sent
log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, lane TEXT NOT NULL, kind TEXT NOT NULL,
  channel TEXT NOT NULL, target TEXT, body TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL DEFAULT 0, delivered_ts TEXT,
  claimed_by TEXT, claimed_until REAL NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
  last_error TEXT)
"""
LANE_INDEX = "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, lane, id)"


@dataclass(frozen=True)
class Letter:
    """One stored message to send: a post (target: the thread's ts, if a reply), an update
    (target: the message's ts) or an upload (target: the thread's ts)."""

    id: int
    lane: str
    kind: str
    channel: str
    target: str | None
    body: dict[str, Any]
    attempts: int

    @property
    def card(self) -> Card:
        return card_from_json(self.body)


def card_to_json(card: Card) -> dict[str, Any]:
    return asdict(card)


def card_from_json(body: dict[str, Any]) -> Card:
    buttons = [Button(**button) for button in body.get("buttons", [])]
    return Card(body["headline"], list(body.get("sections", [])), buttons)


def unstored(error: sqlite3.Error) -> None:
    # The database cannot take it (full, read-only): straight to Slack, best effort. The job
    # itself pauses at its next step transition (bot/store_health.py).
    log.error("kubegate cannot store a message in its outbox (%s); sending it directly", error)


def placeholder(row_id: int) -> str:
    return f"{PLACEHOLDER}{row_id}"


class OutboxRows:
    """The outbox table: what is waiting to be sent, in order per lane (one lane per thread)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        with store.transaction() as conn:
            conn.execute(SCHEMA)
            conn.execute(LANE_INDEX)
        self.changed = asyncio.Event()  # a letter was stored
        self.sent = asyncio.Event()  # a letter was sent or given up

    def add(self, *, kind: str, channel: str, target: str | None, body: dict[str, Any]) -> int:
        with self._store.transaction() as conn:
            if kind == "update":
                # Coalesced: an older content of the same message not yet sent never will be.
                conn.execute(
                    "DELETE FROM outbox WHERE state = 'pending' AND kind = 'update' "
                    "AND channel = ? AND target = ? AND claimed_until < ?",
                    [channel, target, time.time()],
                )
            lane = self._lane(conn, channel, target)
            cursor = conn.execute(
                "INSERT INTO outbox (lane, kind, channel, target, body, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [lane or "", kind, channel, target, json.dumps(body), iso(utcnow())],
            )
            row_id = cursor.lastrowid
            assert row_id is not None
            if lane is None:  # a new top-level message starts its own lane
                conn.execute(
                    "UPDATE outbox SET lane = ? WHERE id = ?", [f"{channel}:{row_id}", row_id]
                )
        self.changed.set()
        return row_id

    def _lane(self, conn: Any, channel: str, target: str | None) -> str | None:
        """Replies and updates go in the lane of the thread (or message) they belong to."""
        if target is None:
            return None
        if target.startswith(PLACEHOLDER):
            row = conn.execute(
                "SELECT lane FROM outbox WHERE id = ?", [int(target.removeprefix(PLACEHOLDER))]
            ).fetchone()
            if row is not None:
                return str(row[0])
        return f"{channel}:{target}"

    def release_claims(self) -> None:
        """At start, once this process owns the jobs: letters a killed process had claimed
        are free again (a claim outliving its process would hold its thread for a minute)."""
        with self._store.transaction() as conn:
            conn.execute("UPDATE outbox SET claimed_until = 0 WHERE state = 'pending'")
        self.changed.set()

    def due(self, *, now: float, owner: str, limit: int = 20) -> list[Letter]:
        """The first unsent letter of each lane whose time has come, claimed by `owner` for a
        while so that another kubegate on the same database does not send it too."""
        with self._store.transaction() as conn:
            rows = conn.execute(
                "SELECT id, lane, kind, channel, target, body, attempts, not_before, "
                "claimed_until FROM outbox o WHERE state = 'pending' AND id = "
                "(SELECT MIN(id) FROM outbox WHERE lane = o.lane AND state = 'pending') "
                "ORDER BY id LIMIT ?",
                [limit * 5],
            ).fetchall()
            letters = []
            for row in rows:
                if row[7] > now or row[8] > now:
                    continue
                conn.execute(
                    "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                    [owner, now + 60, row[0]],
                )
                letters.append(
                    Letter(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6])
                )
                if len(letters) >= limit:
                    break
        return letters

    def next_due(self) -> float | None:
        """When the earliest pending letter may be tried (epoch seconds), if any is pending."""
        with self._store.snapshot() as conn:
            row = conn.execute(
                "SELECT MIN(MAX(not_before, claimed_until)) FROM outbox WHERE state = 'pending'"
            ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def resolve(self, ts: str | None) -> tuple[str | None, bool]:
        """A placeholder's real ts once its post was sent: (ts, True); (None, False) when the
        post was given up on (so what refers to it cannot be sent either)."""
        if ts is None or not ts.startswith(PLACEHOLDER):
            return ts, True
        with self._store.snapshot() as conn:
            row = conn.execute(
                "SELECT state, delivered_ts FROM outbox WHERE id = ?",
                [int(ts.removeprefix(PLACEHOLDER))],
            ).fetchone()
        if row is None or row[0] != "delivered":
            return None, False
        return str(row[1]), True

    def delivered(self, letter: Letter, ts: str | None = None) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET state = 'delivered', delivered_ts = ?, claimed_until = 0 "
                "WHERE id = ?",
                [ts, letter.id],
            )
            self.sent.set()
            # Sent rows are kept only while a later row may still refer to them: a post's ts
            # for a day (its replies and updates are stored within moments of it).
            conn.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND (kind != 'post' OR created_at < ?)",
                [iso(utcnow() - timedelta(days=1))],
            )

    def retry_later(self, letter: Letter, *, after: float, error: str) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, not_before = ?, claimed_until = 0, "
                "last_error = ? WHERE id = ?",
                [time.time() + after, error, letter.id],
            )

    def given_up(self, letter: Letter, *, error: str) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET state = 'dropped', claimed_until = 0, last_error = ? "
                "WHERE id = ?",
                [error, letter.id],
            )
        self.sent.set()

    def pending(self) -> int:
        with self._store.snapshot() as conn:
            row = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()
        return int(row[0])


@dataclass(frozen=True)
class Backlog:
    """What is stored and not yet delivered to Slack, for `/kube status`."""

    waiting: int
    oldest_at: str  # ISO time the oldest waiting message was stored
    last_error: str | None  # what Slack (or the network) last answered a failed try
    next_try_at: float | None  # epoch seconds of the next try, when one is scheduled


def outbox_backlog(store: Store) -> Backlog | None:
    """The waiting messages, read only; None when nothing waits (or no outbox: the console)."""
    try:
        with store.snapshot() as conn:
            count, oldest = conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'"
            ).fetchone()
            if not count:
                return None
            # The failure whose retry was set last is the newest one Slack gave.
            failed = conn.execute(
                "SELECT last_error FROM outbox WHERE state = 'pending' "
                "AND last_error IS NOT NULL ORDER BY not_before DESC LIMIT 1"
            ).fetchone()
            next_try = conn.execute(
                "SELECT MIN(not_before) FROM outbox WHERE state = 'pending' AND attempts > 0"
            ).fetchone()
    except sqlite3.OperationalError:  # no such table: this database never had an outbox
        return None
    return Backlog(
        waiting=int(count),
        oldest_at=str(oldest),
        last_error=str(failed[0]) if failed else None,
        next_try_at=float(next_try[0]) if next_try and next_try[0] is not None else None,
    )


class OutboxChat:
    """The Chat a job speaks to: everything that goes into a channel is stored, then sent."""

    def __init__(self, rows: OutboxRows, direct: Chat) -> None:
        self._rows = rows
        self._direct = direct

    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str:
        try:
            row_id = self._rows.add(
                kind="post", channel=channel, target=thread_ts, body=card_to_json(card)
            )
        except sqlite3.OperationalError as error:
            unstored(error)
            with contextlib.suppress(Exception):
                return await self._direct.post(channel, card, thread_ts=thread_ts)
            return UNSENT
        return placeholder(row_id)

    async def update(self, channel: str, ts: str, card: Card) -> None:
        try:
            self._rows.add(kind="update", channel=channel, target=ts, body=card_to_json(card))
        except sqlite3.OperationalError as error:
            unstored(error)
            with contextlib.suppress(Exception):
                await self._direct.update(channel, ts, card)

    async def upload(self, channel: str, thread_ts: str, *, title: str, content: str) -> None:
        body = {"title": title, "content": content}
        try:
            self._rows.add(kind="upload", channel=channel, target=thread_ts, body=body)
        except sqlite3.OperationalError as error:
            unstored(error)  # long output is in the step's record; the thread has its tail

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        await self._direct.ephemeral(channel, user, text)

    async def ephemeral_card(self, channel: str, user: str, card: Card) -> None:
        await self._direct.ephemeral_card(channel, user, card)

    async def group_members(self, group_id: str) -> set[str]:
        return await self._direct.group_members(group_id)
