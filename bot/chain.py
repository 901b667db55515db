"""The audit chain's links: each event's hash covers the event before it, keyed (HMAC-SHA256).

The key lives outside the database (Vault or a 0600 key file), so someone holding only the
database file cannot edit an event and recompute the chain after it. Databases written before
the key existed carry plain sha256 links (scheme "sha256"); they still verify, and the first
keyed event pins the last of them through its `prev_hash`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from playbooks.plan import canonical_json

GENESIS = "0" * 64
KEYED = "hmac-sha256"  # the configured key: in Vault, or in the key file when there is no Vault
# Vault was configured but could not be reached at start-up: kubegate kept serving, keying the
# chain with a local fallback key file until its next start (and said so in the chain).
FALLBACK = "hmac-sha256-fallback"
KEYED_SCHEMES = (KEYED, FALLBACK)
UNKEYED = "sha256"  # the scheme of kubegate versions before the keyed chain
EVENT_FIELDS = ("id", "time", "actor", "action", "job_id", "cluster", "target")


def link_hash(scheme: str, key: bytes | None, prev_hash: str, event: dict[str, Any]) -> str:
    message = (prev_hash + canonical_json(event)).encode()
    if scheme == UNKEYED:
        return hashlib.sha256(message).hexdigest()
    if key is None:
        raise ValueError("a keyed link needs the audit key")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def event_of(row: dict[str, Any]) -> dict[str, Any]:
    """The hashed content of a stored event (raises ValueError if its details are not JSON)."""
    return {**{key: row[key] for key in EVENT_FIELDS}, "details": json.loads(row["details"])}


def append(
    conn: sqlite3.Connection,
    key: bytes,
    *,
    scheme: str = KEYED,
    action: str,
    actor: str,
    job_id: int | None = None,
    cluster: str | None = None,
    target: str | None = None,
    details: dict[str, Any],
) -> int:
    """Append one keyed event inside the caller's transaction; returns its id."""
    row = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    prev_id, prev_hash = (int(row[0]), str(row[1])) if row else (0, GENESIS)
    event = {
        "id": prev_id + 1,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "actor": actor,
        "action": action,
        "job_id": job_id,
        "cluster": cluster,
        "target": target,
        "details": details,
    }
    conn.execute(
        "INSERT INTO audit (id, time, actor, action, job_id, cluster, target, details, "
        "prev_hash, hash, scheme) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            event["id"],
            event["time"],
            actor,
            action,
            job_id,
            cluster,
            target,
            canonical_json(details),
            prev_hash,
            link_hash(scheme, key, prev_hash, event),
            scheme,
        ],
    )
    return prev_id + 1


def keyed_event_holds(row: dict[str, Any], keys: Mapping[str, bytes]) -> bool:
    """One keyed event's own hash checks out (what counting a vote needs, without the walk)."""
    key = keys.get(row["scheme"])
    if row["scheme"] not in KEYED_SCHEMES or key is None:
        return False
    try:
        event = event_of(row)
    except ValueError:
        return False
    expected = link_hash(row["scheme"], key, row["prev_hash"], event)
    return hmac.compare_digest(expected, row["hash"])


@dataclass(frozen=True)
class BrokenLink:
    event_id: int | None  # None: the problem is not one event (a vote row, a job, the anchor)
    reason: str

    def __str__(self) -> str:
        return f"at event {self.event_id}: {self.reason}" if self.event_id else self.reason


@dataclass(frozen=True)
class ChainWalk:
    """What walking the whole chain found."""

    count: int
    head: tuple[int, str] | None  # (id, hash) of the newest event
    keyed_from: int | None  # the first keyed event; before it, plain sha256 links
    unchecked: int  # keyed events whose key was not at hand: their links hold, hashes unchecked
    fallback: int  # events keyed with the fallback key file (Vault was down at start-up)
    broken: BrokenLink | None

    @property
    def key_checked(self) -> bool:
        return self.unchecked == 0


def walk(rows: Iterable[dict[str, Any]], keys: Mapping[str, bytes]) -> ChainWalk:
    """Check every link in id order; stop at the first one that does not hold."""
    prev_hash, expected_id, keyed_from = GENESIS, 1, None
    head: tuple[int, str] | None = None
    unchecked = fallback = 0

    def result(broken: BrokenLink | None) -> ChainWalk:
        return ChainWalk(expected_id - 1, head, keyed_from, unchecked, fallback, broken)

    for row in rows:
        broken = _link_problem(row, expected_id, prev_hash, keyed_from, keys)
        if broken is not None:
            return result(broken)
        if row["scheme"] in KEYED_SCHEMES:
            keyed_from = keyed_from or row["id"]
            unchecked += row["scheme"] not in keys
            fallback += row["scheme"] == FALLBACK
        prev_hash, head = row["hash"], (row["id"], row["hash"])
        expected_id += 1
    return result(None)


def _link_problem(
    row: dict[str, Any],
    expected_id: int,
    prev_hash: str,
    keyed_from: int | None,
    keys: Mapping[str, bytes],
) -> BrokenLink | None:
    if row["id"] != expected_id:
        return BrokenLink(expected_id, f"event {expected_id} is missing")
    if row["prev_hash"] != prev_hash:
        return BrokenLink(row["id"], "its prev_hash does not match the event before it")
    if row["scheme"] not in (*KEYED_SCHEMES, UNKEYED):
        return BrokenLink(row["id"], f"unknown hash scheme {row['scheme']!r}")
    if row["scheme"] == UNKEYED and keyed_from is not None:
        return BrokenLink(
            row["id"], f"an unkeyed event after the keyed chain began at event {keyed_from}"
        )
    try:
        event = event_of(row)
    except ValueError:
        return BrokenLink(row["id"], "its details are not valid JSON")
    key = keys.get(row["scheme"])
    if row["scheme"] in KEYED_SCHEMES and key is None:
        return None  # the link is whole; the hash itself cannot be recomputed without the key
    if not hmac.compare_digest(link_hash(row["scheme"], key, prev_hash, event), row["hash"]):
        if row["scheme"] in KEYED_SCHEMES:
            return BrokenLink(
                row["id"],
                "its content does not match its keyed hash (edited, or the chain was "
                "recomputed without kubegate's audit key)",
            )
        return BrokenLink(row["id"], "its content does not match its hash")
    return None
