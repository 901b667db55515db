"""The store: jobs, steps, votes and locks in SQLite (sqlite-utils).

Every state change is a conditional UPDATE, so a double click or a redelivered request finds
the job already moved on and does nothing; the same transaction appends the change to the
audit chain, so no state exists that the chain does not know. The database and its WAL/SHM
files are created 0600 before SQLite opens them. Local SQLite writes take microseconds; they
run on the caller's thread under one lock rather than hopping threads for each.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.chain import KEYED
from bot.private_files import ensure_private, sqlite_files
from bot.store_chain import ChainRecords
from bot.store_chain import VoteRecord as VoteRecord  # re-exported: where readers look
from bot.store_locks import LockRecords
from bot.store_side import SideRecords
from commands import Command, parse_command


class JobState(StrEnum):
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    INTERRUPTED = "INTERRUPTED"


END_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED, JobState.EXPIRED}
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds") if moment else None


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Job:
    id: int
    cluster: str
    verb: str
    target: str
    requester: str
    channel: str
    command_text: str
    state: JobState
    plan: dict[str, Any]
    plan_digest: str
    approvals_needed: int
    created_at: datetime
    approval_deadline: datetime
    approved_at: datetime | None
    execution_deadline: datetime | None
    root_ts: str | None
    finished_at: datetime | None
    outcome: str | None
    scheduled_for: datetime | None = None
    break_glass: str | None = None  # the reason, when it ran without approval

    @property
    def command(self) -> Command:
        """The request as typed, parsed again (parsing is pure, so it is the same request)."""
        return parse_command(self.command_text)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(
            id=row["id"],
            cluster=row["cluster"],
            verb=row["verb"],
            target=row["target"],
            requester=row["requester"],
            channel=row["channel"],
            command_text=row["command_text"],
            state=JobState(row["state"]),
            plan=json.loads(row["plan"]),
            plan_digest=row["plan_digest"],
            approvals_needed=row["approvals_needed"],
            created_at=datetime.fromisoformat(row["created_at"]),
            approval_deadline=datetime.fromisoformat(row["approval_deadline"]),
            approved_at=parse_iso(row["approved_at"]),
            execution_deadline=parse_iso(row["execution_deadline"]),
            root_ts=row["root_ts"],
            finished_at=parse_iso(row["finished_at"]),
            outcome=row["outcome"],
            scheduled_for=parse_iso(row.get("scheduled_for")),
            break_glass=row.get("break_glass"),
        )


@dataclass(frozen=True)
class StepRecord:
    job_id: int
    index: int
    name: str
    title: str
    state: str
    started_at: datetime | None
    finished_at: datetime | None
    summary: str | None
    output: str | None
    data: dict[str, Any]


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, cluster TEXT NOT NULL, verb TEXT NOT NULL,
  target TEXT NOT NULL, requester TEXT NOT NULL, channel TEXT NOT NULL, command_text TEXT NOT NULL,
  state TEXT NOT NULL, plan TEXT NOT NULL, plan_digest TEXT NOT NULL,
  approvals_needed INTEGER NOT NULL, created_at TEXT NOT NULL, approval_deadline TEXT NOT NULL,
  approved_at TEXT, execution_deadline TEXT, root_ts TEXT, finished_at TEXT, outcome TEXT,
  scheduled_for TEXT, break_glass TEXT);
CREATE TABLE IF NOT EXISTS alert_groups (
  id INTEGER PRIMARY KEY AUTOINCREMENT, group_key TEXT NOT NULL UNIQUE, cluster TEXT NOT NULL,
  channel TEXT NOT NULL, ts TEXT, labels TEXT NOT NULL, node TEXT, status TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS reviews (
  job_id INTEGER PRIMARY KEY REFERENCES jobs(id), opened_at TEXT NOT NULL,
  acknowledged_by TEXT, acknowledged_at TEXT);
CREATE TABLE IF NOT EXISTS steps (
  job_id INTEGER NOT NULL REFERENCES jobs(id), idx INTEGER NOT NULL, name TEXT NOT NULL,
  title TEXT NOT NULL, state TEXT NOT NULL, started_at TEXT, finished_at TEXT, summary TEXT,
  output TEXT, data TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (job_id, idx));
CREATE TABLE IF NOT EXISTS votes (
  job_id INTEGER NOT NULL REFERENCES jobs(id), voter TEXT NOT NULL, approve INTEGER NOT NULL,
  plan_digest TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (job_id, voter, plan_digest));
CREATE TABLE IF NOT EXISTS locks (
  cluster TEXT NOT NULL, resource TEXT NOT NULL, job_id INTEGER NOT NULL REFERENCES jobs(id),
  at TEXT NOT NULL, PRIMARY KEY (cluster, resource));
"""


class Store(SideRecords, LockRecords, ChainRecords):
    def __init__(
        self,
        path: Path | str,
        *,
        chain_keys: Mapping[str, bytes] | None = None,
        writes_with: str = KEYED,
        read_only: bool = False,
    ) -> None:
        """`chain_keys`: the audit keys by scheme (from Vault); without them, the key files beside
        the database. `read_only` (audit verify/export) makes no key and writes no event."""
        if str(path) != ":memory:":
            for file in sqlite_files(Path(path)):
                ensure_private(file)
        self.after_job_end: list[Callable[[], None]] = []  # the chain head is anchored then
        self.before_close: list[Callable[[], None]] = []
        self.after_event: list[Callable[[], None]] = []  # called by AuditLog after each record
        connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA busy_timeout=5000")
        connection.executescript(SCHEMA)
        self._prepare_audit_table(connection)
        self.db = sqlite_utils.Database(connection)
        self._lock = threading.RLock()
        self._open_chain(path, chain_keys, writes_with=writes_with, read_only=read_only)

    def close(self) -> None:
        for last_words in self.before_close:
            last_words()
        self.db.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: writers (even another process) wait their turn."""
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # Also when COMMIT itself failed (disk full, I/O error): SQLite may have left
                # the transaction open, and the next BEGIN would fail for ever.
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    # Jobs ------------------------------------------------------------------------------------

    def create_job(self, **fields: Any) -> Job:
        fields = {**fields, "plan": json.dumps(fields["plan"]), "state": str(fields["state"])}
        for key in ("created_at", "approval_deadline"):
            fields[key] = iso(fields[key])
        with self.transaction() as conn:
            columns = ", ".join(fields)
            marks = ", ".join("?" for _ in fields)
            cursor = conn.execute(
                f"INSERT INTO jobs ({columns}) VALUES ({marks})",  # noqa: S608 — placeholders only
                list(fields.values()),
            )
            job_id = cursor.lastrowid
            assert job_id is not None
            self.append_event(
                conn,
                action="job.state",
                actor="system",
                job_id=job_id,
                cluster=fields["cluster"],
                target=fields["target"],
                details={"from": None, "to": fields["state"]},
            )
        return self.job(job_id)

    def job(self, job_id: int) -> Job:
        with self._lock:
            return Job.from_row(self.db.table("jobs").get(job_id))

    def find_job(self, job_id: int) -> Job | None:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
        return Job.from_row(rows[0]) if rows else None

    def jobs_in(self, states: Sequence[JobState]) -> list[Job]:
        marks = ", ".join("?" for _ in states)
        with self._lock:
            rows = self.db.query(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id",  # noqa: S608
                [str(s) for s in states],
            )
            return [Job.from_row(row) for row in rows]

    def recent_jobs(self, limit: int = 20) -> list[Job]:
        with self._lock:
            return [
                Job.from_row(r)
                for r in self.db.query("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", [limit])
            ]

    def transition(
        self,
        job_id: int,
        *,
        from_states: Sequence[JobState],
        to: JobState,
        keep_locks: bool = False,
        **fields: Any,
    ) -> bool:
        """Move a job on only if it is still in one of `from_states`; False if someone was first.

        An end state frees the job's locks, except with `keep_locks`: a job halted midway
        (FAILED with Retry/Abort offered) keeps what it holds until a retry or abort ends it.
        """
        values = {key: iso(v) if isinstance(v, datetime) else v for key, v in fields.items()}
        if "plan" in values:
            values["plan"] = json.dumps(values["plan"])
        assignments = ", ".join(["state = ?", *(f"{key} = ?" for key in values)])
        marks = ", ".join("?" for _ in from_states)
        with self.transaction() as conn:
            before = conn.execute(
                "SELECT state, cluster, target FROM jobs WHERE id = ?", [job_id]
            ).fetchone()
            cursor = conn.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND state IN ({marks})",  # noqa: S608
                [str(to), *values.values(), job_id, *(str(s) for s in from_states)],
            )
            if not cursor.rowcount:
                return False
            self.append_event(
                conn,
                action="job.state",
                actor="system",
                job_id=job_id,
                cluster=before[1],
                target=before[2],
                details={"from": before[0], "to": str(to)},
            )
            if to in END_STATES and not keep_locks:
                conn.execute("DELETE FROM locks WHERE job_id = ?", [job_id])
        if to in END_STATES:
            for anchor_chain_head in self.after_job_end:
                anchor_chain_head()
        return True

    def set_root_ts(self, job_id: int, ts: str, *, only_if_missing: bool = False) -> None:
        guard = " AND root_ts IS NULL" if only_if_missing else ""
        with self.transaction() as conn:
            conn.execute(f"UPDATE jobs SET root_ts = ? WHERE id = ?{guard}", [ts, job_id])  # noqa: S608

    # Steps -----------------------------------------------------------------------------------

    def add_steps(self, job_id: int, steps: Sequence[tuple[str, str]]) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM steps WHERE job_id = ?", [job_id])
            for index, (name, title) in enumerate(steps):
                conn.execute(
                    "INSERT INTO steps (job_id, idx, name, title, state) VALUES (?, ?, ?, ?, 'pending')",
                    [job_id, index, name, title],
                )

    def step_started(self, job_id: int, index: int) -> None:
        # A retried step starts afresh: its last attempt's outcome is no longer what it shows.
        with self.transaction() as conn:
            conn.execute(
                "UPDATE steps SET state = 'running', started_at = ?, finished_at = NULL, "
                "summary = NULL, output = NULL WHERE job_id = ? AND idx = ?",
                [iso(utcnow()), job_id, index],
            )

    def step_finished(
        self, job_id: int, index: int, *, ok: bool, summary: str, output: str, data: dict[str, Any]
    ) -> None:
        # A failure lays what it brings over the step's last checkpoint instead of replacing
        # it: a retry goes on from there (an error path never clears a checkpoint).
        data_sql = "data = ?" if ok else "data = json_patch(data, ?)"
        with self.transaction() as conn:
            conn.execute(
                "UPDATE steps SET state = ?, finished_at = ?, summary = ?, output = ?, "  # noqa: S608
                f"{data_sql} WHERE job_id = ? AND idx = ?",
                [
                    "succeeded" if ok else "failed",
                    iso(utcnow()),
                    summary,
                    output,
                    json.dumps(data),
                    job_id,
                    index,
                ],
            )

    def step_checkpoint(self, job_id: int, index: int, data: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE steps SET data = ? WHERE job_id = ? AND idx = ?",
                [json.dumps(data), job_id, index],
            )

    def steps(self, job_id: int) -> list[StepRecord]:
        with self._lock:
            rows = self.db.query("SELECT * FROM steps WHERE job_id = ? ORDER BY idx", [job_id])
            return [
                StepRecord(
                    job_id=r["job_id"],
                    index=r["idx"],
                    name=r["name"],
                    title=r["title"],
                    state=r["state"],
                    started_at=parse_iso(r["started_at"]),
                    finished_at=parse_iso(r["finished_at"]),
                    summary=r["summary"],
                    output=r["output"],
                    data=json.loads(r["data"]),
                )
                for r in rows
            ]
