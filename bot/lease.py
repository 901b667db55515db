"""One owner for the jobs of a database: a lease in the store, renewed, with a fencing token.

The `kubegate serve` that holds the lease runs jobs (starts, resumes, recovers interrupted
ones, fires scheduled ones); another one started on the same database by mistake stands by,
says so in its log, and takes over only once the lease has expired (its holder died or
stopped). Every step transition checks the token (`fence`): a process that lost its lease
(stalled past its expiry while another took over) stops before it records or starts anything,
so no step runs twice. A holder on this host whose process is gone (kill -9) is not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.store import Store

log = logging.getLogger(__name__)

LEASE_SECONDS = 15.0  # how long a holder that stopped renewing still owns the jobs
RENEW_EVERY = LEASE_SECONDS / 3
JOBS = "jobs"

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
  name TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL,
  host TEXT NOT NULL, pid INTEGER NOT NULL, renewed_at REAL NOT NULL DEFAULT 0)
"""
# A database from before `renewed_at` was kept gets the column (0 there: "not known").
RENEWED_AT = "ALTER TABLE leases ADD COLUMN renewed_at REAL NOT NULL DEFAULT 0"
# The kubegates standing by, so that `/kube status` (answered by the owner) can name them.
STANDBYS = """
CREATE TABLE IF NOT EXISTS lease_standbys (
  owner TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, seen_at REAL NOT NULL)
"""


class LeaseLost(Exception):
    """This process no longer owns the jobs: another kubegate took them over."""


@dataclass(frozen=True)
class Holder:
    owner: str
    token: int
    expires_at: float
    host: str
    pid: int

    def describe(self) -> str:
        return f"kubegate pid {self.pid} on {self.host}"

    def gone(self, now: float) -> bool:
        """Its lease expired, or it ran on this host and its process no longer exists."""
        if self.expires_at <= now:
            return True
        if self.host != socket.gethostname() or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class JobsLease:
    def __init__(self, store: Store, *, seconds: float = LEASE_SECONDS) -> None:
        self._store = store
        self._seconds = seconds
        self.owner = uuid.uuid4().hex
        self.token: int | None = None
        self._renewal: asyncio.Task[None] | None = None
        with store.transaction() as conn:
            conn.execute(SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(leases)")}
            if "renewed_at" not in columns:
                conn.execute(RENEWED_AT)
            conn.execute(STANDBYS)

    def holder(self) -> Holder | None:
        with self._store.snapshot() as conn:
            row = conn.execute(
                "SELECT owner, token, expires_at, host, pid FROM leases WHERE name = ?", [JOBS]
            ).fetchone()
        return Holder(*row) if row else None

    def try_take(self) -> Holder | None:
        """Take the lease if nobody live holds it; else who does."""
        now = time.time()
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT owner, token, expires_at, host, pid FROM leases WHERE name = ?", [JOBS]
            ).fetchone()
            current = Holder(*row) if row else None
            if current is not None and current.owner != self.owner and not current.gone(now):
                self._standing_by(conn, now)
                return current
            token = (current.token if current else 0) + 1
            conn.execute(
                "INSERT OR REPLACE INTO leases "
                "(name, owner, token, expires_at, host, pid, renewed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    JOBS,
                    self.owner,
                    token,
                    now + self._seconds,
                    socket.gethostname(),
                    os.getpid(),
                    now,
                ],
            )
            conn.execute("DELETE FROM lease_standbys WHERE owner = ?", [self.owner])
        self.token = token
        return None

    def _standing_by(self, conn: sqlite3.Connection, now: float) -> None:
        """Say in the store that this process waits for the lease (seen again at every try)."""
        conn.execute(
            "INSERT OR REPLACE INTO lease_standbys (owner, host, pid, seen_at) VALUES (?, ?, ?, ?)",
            [self.owner, socket.gethostname(), os.getpid(), now],
        )

    async def take(self, stop: asyncio.Event | None = None) -> bool:
        """Wait until this process owns the jobs (standing by meanwhile); False if stopped."""
        said = 0.0
        while True:
            holder = self.try_take()
            if holder is None:
                log.info(
                    "this kubegate now runs the jobs of its database (lease token %s)", self.token
                )
                self._renewal = asyncio.create_task(self._renew(), name="jobs lease")
                return True
            if time.monotonic() - said > 60:
                log.warning(
                    "another kubegate (%s) owns the jobs of this database until %s; "
                    "this one stands by and runs no job until that lease expires",
                    holder.describe(),
                    time.strftime("%H:%M:%S", time.gmtime(holder.expires_at)),
                )
                said = time.monotonic()
            wait = min(max(holder.expires_at - time.time(), 0.2), RENEW_EVERY)
            if stop is None:
                await asyncio.sleep(wait)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await stop.wait()
                if stop.is_set():
                    self._no_longer_standing_by()
                    return False

    def fence(self) -> None:
        """Raise LeaseLost unless this process still holds the lease it took (same token)."""
        holder = self.holder()
        if (
            self.token is None
            or holder is None
            or holder.owner != self.owner
            or holder.token != self.token
        ):
            by = holder.describe() if holder else "nobody"
            raise LeaseLost(f"the jobs lease is now held by {by}")

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                self._extend()
            except LeaseLost as lost:
                log.critical("kubegate lost its jobs lease (%s): it runs no more steps", lost)
                return
            except Exception:
                log.exception("could not renew the jobs lease; trying again")

    def _no_longer_standing_by(self) -> None:
        with contextlib.suppress(sqlite3.Error), self._store.transaction() as conn:
            conn.execute("DELETE FROM lease_standbys WHERE owner = ?", [self.owner])

    def _extend(self) -> None:
        now = time.time()
        with self._store.transaction() as conn:
            cursor = conn.execute(
                "UPDATE leases SET expires_at = ?, renewed_at = ? "
                "WHERE name = ? AND owner = ? AND token = ?",
                [now + self._seconds, now, JOBS, self.owner, self.token],
            )
            if not cursor.rowcount:
                raise LeaseLost("another kubegate took the jobs over")

    async def release(self) -> None:
        """On a clean stop: a standby may take over at once."""
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
            self._renewal = None
        self._no_longer_standing_by()
        if self.token is None:
            return
        with self._store.transaction() as conn:
            # Expired, not deleted: the next holder's token is still a higher one.
            conn.execute(
                "UPDATE leases SET expires_at = 0 WHERE name = ? AND owner = ? AND token = ?",
                [JOBS, self.owner, self.token],
            )
        self.token = None


@dataclass(frozen=True)
class Standby:
    """A kubegate on the same database waiting for the lease, as it last said so."""

    host: str
    pid: int
    seen_at: float


@dataclass(frozen=True)
class JobsOwnership:
    """Who runs the jobs of a database and who stands by, as the store knows it."""

    holder: Holder | None
    renewed_at: float  # 0 when not known (a lease taken by a kubegate before it was kept)
    standbys: list[Standby]

    def live_holder(self, now: float) -> Holder | None:
        return self.holder if self.holder is not None and not self.holder.gone(now) else None

    def live_standbys(self, now: float) -> list[Standby]:
        """Those that tried again lately: a standby retries well within one lease's length,
        so one not seen for longer has stopped (or was killed)."""
        return [s for s in self.standbys if now - s.seen_at <= LEASE_SECONDS]


def jobs_ownership(store: Store) -> JobsOwnership | None:
    """The lease and the standbys, read only; None for a database no `kubegate serve` has
    run on (the console runs its jobs itself, with no lease)."""
    try:
        with store.snapshot() as conn:
            row = conn.execute(
                "SELECT owner, token, expires_at, host, pid, renewed_at FROM leases WHERE name = ?",
                [JOBS],
            ).fetchone()
            waiting = conn.execute(
                "SELECT host, pid, seen_at FROM lease_standbys ORDER BY seen_at"
            ).fetchall()
    except sqlite3.OperationalError:  # no such table: never served
        return None
    holder = Holder(*row[:5]) if row else None
    renewed_at = float(row[5]) if row else 0.0
    return JobsOwnership(holder, renewed_at, [Standby(*w) for w in waiting])


def owns_jobs(fence: Callable[[], None], job_id: int) -> bool:
    """Whether this process may run job `job_id` now (it holds the lease); said when not."""
    try:
        fence()
    except LeaseLost as lost:
        log.error("job #%s not run by this kubegate: %s", job_id, lost)
        return False
    return True


async def fenced(job_id: int, run: Awaitable[None]) -> None:
    """Run a job while this process owns the jobs; once another kubegate took them over, the
    job stops at its next step transition, recording nothing more (the new owner goes on)."""
    try:
        await run
    except LeaseLost as lost:
        log.error("job #%s stopped here, left to the new owner: %s", job_id, lost)
