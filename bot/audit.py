"""The tamper-evident audit log: an append-only chain of events in the store, keyed with a
secret kept outside the database, and anchored outside it (bot/anchors.py).

hash = HMAC-SHA256(key, prev_hash || canonical_json(event)); `verify` walks the chain, checks
that the votes and job states the store acts on are the chain's, and that the newest anchor
is still in it. Details pass through the redactor before they are written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bot.anchors import Anchor, AnchorFile
from bot.audit_checks import AuditReport, check_store
from bot.chain import GENESIS as GENESIS
from bot.chain import BrokenLink as BrokenLink
from bot.redact import Redactor
from bot.store import Job, Store, iso


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
            event_id = self._store.append_event(
                conn,
                action=action,
                actor=actor,
                job_id=job_id,
                cluster=cluster,
                target=target,
                details=clean,
            )
        for hook in self._store.after_event:
            hook()
        return event_id

    def record_vote(self, job: Job, *, voter: str, approve: bool, plan_digest: str) -> bool:
        """A vote: its row (the double-click guard) and its chain event, in one transaction, so
        no crash or concurrent `audit verify` ever sees one without the other. False when this
        person already voted on this plan."""
        with self._store.transaction() as conn:
            counted = self._store.insert_vote(
                conn, job.id, voter=voter, approve=approve, plan_digest=plan_digest
            )
            if not counted:
                return False
            self._store.append_event(
                conn,
                action="vote",
                actor=voter,
                job_id=job.id,
                cluster=job.cluster,
                target=job.target,
                details={"approve": approve, "plan_digest": plan_digest},
            )
        for hook in self._store.after_event:
            hook()
        return True

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
        # Under the store's lock, as every read of the shared connection: the anchoring thread
        # reads the chain head on it too.
        with self._store.snapshot():
            query = f"SELECT * FROM audit {clause} ORDER BY id"  # noqa: S608
            rows = list(self._store.db.query(query, params))
        for row in rows:
            yield {**row, "details": json.loads(row["details"])}

    def check(
        self, *, anchor_file: Path | None = None, anchors: Sequence[Anchor] = ()
    ) -> AuditReport:
        """The whole verification: chain, votes, job states, the anchor file's newest anchor
        and any `anchors` kept elsewhere (a SIEM's copies)."""
        file = AnchorFile(anchor_file) if anchor_file is not None else None
        return check_store(self._store, anchors=file, given=anchors)

    def verify(self, *, anchor_file: Path | None = None) -> BrokenLink | None:
        """The first thing that does not hold, or None if the log is whole."""
        return self.check(anchor_file=anchor_file).broken

    def export_jsonl(self) -> Iterator[str]:
        for event in self.events():
            yield json.dumps(event, sort_keys=True)
