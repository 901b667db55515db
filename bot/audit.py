"""The tamper-evident audit log: an append-only hash chain in the store.

hash = sha256(prev_hash || canonical_json(event)); `verify` walks the chain and names the
first broken link. Details pass through the redactor before they are written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bot.redact import Redactor
from bot.store import Job, Store, iso, utcnow
from playbooks.plan import canonical_json

GENESIS = "0" * 64


def event_hash(prev_hash: str, event: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(event)).encode()).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    event_id: int
    reason: str


class AuditLog:
    def __init__(self, store: Store, redactor: Redactor) -> None:
        self._store = store
        self.redactor = redactor

    def record(
        self,
        action: str,
        *,
        actor: str,
        job_id: int | None = None,
        cluster: str | None = None,
        target: str | None = None,
        **details: Any,
    ) -> int:
        clean = self.redactor.scrub(details)
        with self._store.transaction() as conn:
            row = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            prev_hash = row[0] if row else GENESIS
            next_id = (conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM audit").fetchone())[0]
            event = {
                "id": next_id,
                "time": iso(utcnow()),
                "actor": actor,
                "action": action,
                "job_id": job_id,
                "cluster": cluster,
                "target": target,
                "details": clean,
            }
            conn.execute(
                "INSERT INTO audit (id, time, actor, action, job_id, cluster, target, details, "
                "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    next_id,
                    event["time"],
                    actor,
                    action,
                    job_id,
                    cluster,
                    target,
                    canonical_json(clean),
                    prev_hash,
                    event_hash(prev_hash, event),
                ],
            )
        return int(next_id)

    def record_job(self, action: str, job: Job, *, actor: str, **details: Any) -> int:
        """An event about a job: its id, cluster and target are filled in."""
        return self.record(
            action, actor=actor, job_id=job.id, cluster=job.cluster, target=job.target, **details
        )

    def events(self, **filters: Any) -> Iterator[dict[str, Any]]:
        where, params = [], []
        for column in ("actor", "job_id", "target", "action"):
            if filters.get(column) is not None:
                where.append(f"{column} = ?")
                params.append(filters[column])
        if filters.get("since") is not None:
            where.append("time >= ?")
            params.append(iso(filters["since"]))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = list(self._store.db.query(f"SELECT * FROM audit {clause} ORDER BY id", params))  # noqa: S608
        for row in rows:
            yield {**row, "details": json.loads(row["details"])}

    def verify(self) -> BrokenLink | None:
        """The first event whose hash or link does not hold, or None if the chain is whole."""
        prev_hash = GENESIS
        expected_id = 1
        for row in self._store.db.query("SELECT * FROM audit ORDER BY id"):
            if row["id"] != expected_id:
                return BrokenLink(expected_id, f"event {expected_id} is missing")
            if row["prev_hash"] != prev_hash:
                return BrokenLink(row["id"], "its prev_hash does not match the event before it")
            try:
                details = json.loads(row["details"])
            except json.JSONDecodeError:
                return BrokenLink(row["id"], "its details are not valid JSON")
            event = {
                key: row[key]
                for key in ("id", "time", "actor", "action", "job_id", "cluster", "target")
            }
            event["details"] = details
            if event_hash(prev_hash, event) != row["hash"]:
                return BrokenLink(row["id"], "its content does not match its hash")
            prev_hash = row["hash"]
            expected_id += 1
        return None

    def export_jsonl(self) -> Iterator[str]:
        for event in self.events():
            yield json.dumps(event, sort_keys=True)
