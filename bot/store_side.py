"""The store's side records: alert groups (one channel message each) and break-glass reviews.

Mixed into `Store`; they share its connection, lock and transactions.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlite_utils


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Review:
    """A break-glass run waiting for (or having had) someone else's look."""

    job_id: int
    opened_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None


class SideRecords:
    db: sqlite_utils.Database
    _lock: threading.RLock

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    # Alert groups (one channel message each) --------------------------------------------------

    def alert_group(self, group_key: str) -> dict[str, Any] | None:
        return self._alert_group_where("group_key = ?", group_key)

    def alert_group_by_id(self, group_id: int) -> dict[str, Any] | None:
        return self._alert_group_where("id = ?", group_id)

    def _alert_group_where(self, clause: str, value: object) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db.query(f"SELECT * FROM alert_groups WHERE {clause}", [value]))  # noqa: S608
        return {**rows[0], "labels": json.loads(rows[0]["labels"])} if rows else None

    def add_alert_group(
        self, group_key: str, *, cluster: str, channel: str, labels: dict[str, str]
    ) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO alert_groups (group_key, cluster, channel, labels, updated_at) VALUES (?, ?, ?, ?, ?)",
                [group_key, cluster, channel, json.dumps(labels), _now()],
            )
            assert cursor.lastrowid is not None
            return int(cursor.lastrowid)

    def set_alert_group_ts(self, group_id: int, ts: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE alert_groups SET ts = ? WHERE id = ?", [ts, group_id])

    def set_alert_group_status(self, group_id: int, status: str, *, node: str | None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE alert_groups SET status = ?, node = ?, updated_at = ? WHERE id = ?",
                [status, node, _now(), group_id],
            )

    # Break-glass reviews --------------------------------------------------------------------

    def open_review(self, job_id: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO reviews (job_id, opened_at) VALUES (?, ?)",
                [job_id, _now()],
            )

    def acknowledge_review(self, job_id: int, user: str) -> bool:
        """False when there is no open review (already acknowledged: a double click)."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE reviews SET acknowledged_by = ?, acknowledged_at = ? "
                "WHERE job_id = ? AND acknowledged_by IS NULL",
                [user, _now(), job_id],
            )
            return cursor.rowcount == 1

    def review(self, job_id: int) -> Review | None:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM reviews WHERE job_id = ?", [job_id]))
        if not rows:
            return None
        row = rows[0]
        return Review(
            job_id,
            datetime.fromisoformat(row["opened_at"]),
            row["acknowledged_by"],
            _parse(row["acknowledged_at"]),
        )

    def open_reviews(self) -> list[int]:
        with self._lock:
            rows = self.db.query(
                "SELECT job_id FROM reviews WHERE acknowledged_by IS NULL ORDER BY job_id"
            )
            return [int(row["job_id"]) for row in rows]
