"""The store's locks: what each job holds (a node, the whole cluster), per cluster.

Mixed into `Store`; they share its connection, lock and transactions. A job's locks go with
it when it ends, except a halted job's (see `Store.transition`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import sqlite_utils


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class LockRecords:
    db: sqlite_utils.Database
    _lock: threading.RLock

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    # Locks -----------------------------------------------------------------------------------

    def acquire_locks(self, job_id: int, cluster: str, resources: Sequence[str]) -> int | None:
        """Take every lock or none; returns the job holding a conflicting lock, if any.

        Locks are per cluster; the resource `*` (a cluster upgrade) conflicts with every other.
        """
        with self.transaction() as conn:
            holder = _conflict(conn, job_id, cluster, resources)
            if holder is not None:
                return holder
            for resource in resources:
                conn.execute(
                    "INSERT OR REPLACE INTO locks (cluster, resource, job_id, at) VALUES (?, ?, ?, ?)",
                    [cluster, resource, job_id, _now()],
                )
        return None

    def lock_holder(self, cluster: str, resources: Sequence[str]) -> int | None:
        with self._lock:
            return _conflict(self.db.conn, None, cluster, resources)

    def release_locks(self, job_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM locks WHERE job_id = ?", [job_id])


def _conflict(
    conn: sqlite3.Connection, job_id: int | None, cluster: str, resources: Sequence[str]
) -> int | None:
    rows = conn.execute(
        "SELECT resource, job_id FROM locks WHERE cluster = ?", [cluster]
    ).fetchall()
    for held, holder in rows:
        if holder == job_id:
            continue
        if held == "*" or "*" in resources or held in resources:
            return int(holder)
    return None
