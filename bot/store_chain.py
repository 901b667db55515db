"""The store's audit-chain side: the audit table (append-only), votes, and the chain head.

Mixed into `Store`. The vote that counts is the one in the chain: `votes` reads the keyed
"vote" events, so a row slipped into the `votes` table by someone holding the database file
counts for nothing (and `audit verify` names it). The `votes` table remains as the cheap
double-click guard.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from bot.audit_keys import keys_beside
from bot.chain import KEYED_SCHEMES, UNKEYED, append, keyed_event_holds

AUDIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, job_id INTEGER, cluster TEXT, target TEXT, details TEXT NOT NULL,
  prev_hash TEXT NOT NULL, hash TEXT NOT NULL, scheme TEXT NOT NULL DEFAULT 'sha256');
"""

# Refusals in the database itself, so no code path (ours or a careless script) edits history.
# Someone with the file can drop them; the keyed hashes and the anchors catch that.
APPEND_ONLY = """
CREATE INDEX IF NOT EXISTS audit_by_job ON audit (job_id, action);
CREATE TRIGGER IF NOT EXISTS audit_refuses_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_refuses_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END;
"""


class NoAuditKey(RuntimeError):
    """Writing to the chain without its key (a store opened only to read and verify)."""


@dataclass(frozen=True)
class VoteRecord:
    job_id: int
    voter: str
    approve: bool
    plan_digest: str
    at: datetime


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str
    keyed_from: int | None


class ChainRecords:
    db: sqlite_utils.Database
    _lock: threading.RLock
    chain_keys: dict[str, bytes]  # by scheme: the configured key, and the fallback one if any
    writes_with: str  # the scheme (so the key) new events are appended with
    after_job_end: list[Callable[[], None]]

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _prepare_audit_table(self, conn: sqlite3.Connection) -> None:
        conn.executescript(AUDIT_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(audit)")}
        if "scheme" not in columns:  # a database from before the keyed chain
            conn.execute("ALTER TABLE audit ADD COLUMN scheme TEXT NOT NULL DEFAULT 'sha256'")
        conn.executescript(APPEND_ONLY)

    def _open_chain(
        self,
        path: Path | str,
        chain_keys: Mapping[str, bytes] | None,
        *,
        writes_with: str,
        read_only: bool,
    ) -> None:
        if chain_keys is None and str(path) != ":memory:":
            # A new key only for a chain nothing has keyed yet: one made later would not match.
            create = not read_only and not self._has_keyed_events()
            chain_keys = keys_beside(Path(path), create=create)
        self.chain_keys, self.writes_with = dict(chain_keys or {}), writes_with
        if not read_only:
            self._mark_keyed_start()

    @property
    def chain_key(self) -> bytes | None:
        """The key new events are appended with; None for a store that can only read."""
        return self.chain_keys.get(self.writes_with)

    def _has_keyed_events(self) -> bool:
        with self._lock:
            row = self.db.conn.execute(
                "SELECT 1 FROM audit WHERE scheme IN (?, ?) LIMIT 1", KEYED_SCHEMES
            )
            return row.fetchone() is not None

    def _mark_keyed_start(self) -> None:
        """Say in the chain itself where an older, unkeyed chain ends and the keyed one begins."""
        if self.chain_key is None:
            return
        with self.transaction() as conn:
            counts = conn.execute(
                "SELECT COUNT(*), SUM(scheme IN (?, ?)) FROM audit", KEYED_SCHEMES
            ).fetchone()
            if counts[0] and not counts[1]:
                self.append_event(
                    conn,
                    action="audit.keyed",
                    actor="system",
                    details={
                        "unkeyed_events": counts[0],
                        "scheme": self.writes_with,
                        "before": UNKEYED,
                    },
                )

    def append_event(
        self, conn: sqlite3.Connection, *, action: str, actor: str, **fields: Any
    ) -> int:
        """One keyed event, inside the caller's transaction."""
        key = self.chain_key
        if key is None:
            raise NoAuditKey("this store was opened without the audit key; it cannot write")
        return append(conn, key, scheme=self.writes_with, action=action, actor=actor, **fields)

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same moment (WAL keeps writers going)."""
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:
                # A write on this connection is still open (sqlite-utils opens its own
                # implicitly): reading inside it already sees one moment.
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def chain_head(self) -> ChainHead | None:
        with self.snapshot() as conn:
            row = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            first = conn.execute(
                "SELECT MIN(id) FROM audit WHERE scheme IN (?, ?)", KEYED_SCHEMES
            ).fetchone()
        return ChainHead(int(row[0]), str(row[1]), first[0]) if row else None

    # Votes -----------------------------------------------------------------------------------

    def record_vote(self, job_id: int, *, voter: str, approve: bool, plan_digest: str) -> bool:
        """False when this person already voted on this plan (a double click or a retry).

        Only the row: the vote counts once its "vote" event is in the chain. Prefer
        `AuditLog.record_vote`, which writes both in one transaction."""
        with self.transaction() as conn:
            return self.insert_vote(
                conn, job_id, voter=voter, approve=approve, plan_digest=plan_digest
            )

    def insert_vote(
        self, conn: sqlite3.Connection, job_id: int, *, voter: str, approve: bool, plan_digest: str
    ) -> bool:
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        cursor = conn.execute(
            "INSERT OR IGNORE INTO votes (job_id, voter, approve, plan_digest, at) "
            "VALUES (?, ?, ?, ?, ?)",
            [job_id, voter, int(approve), plan_digest, at],
        )
        return cursor.rowcount == 1

    def votes(self, job_id: int) -> list[VoteRecord]:
        """The job's votes as the audit chain holds them: keyed "vote" events whose hash holds,
        each person's first vote per plan digest."""
        with self._lock:
            rows = list(
                self.db.query(
                    "SELECT * FROM audit WHERE job_id = ? AND action = 'vote' ORDER BY id", [job_id]
                )
            )
        seen, votes = set(), []
        for row in rows:
            if not keyed_event_holds(row, self.chain_keys):
                continue
            details = _json_details(row)
            digest = str(details.get("plan_digest"))
            if (row["actor"], digest) in seen or not isinstance(details.get("approve"), bool):
                continue
            seen.add((row["actor"], digest))
            at = datetime.fromisoformat(row["time"])
            votes.append(VoteRecord(job_id, row["actor"], details["approve"], digest, at))
        return votes


def _json_details(row: dict[str, Any]) -> dict[str, Any]:
    details = json.loads(row["details"])
    return details if isinstance(details, dict) else {}
