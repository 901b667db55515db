"""What [Silence 1h] silences, and where its requests wait: each alert's own labels (kept per
alert group as webhooks arrive), silence requests with their nonce and votes, and the call to
Alertmanager's API v2 that creates a silence.

An alert's identity in Alertmanager is its whole label set (its fingerprint is a hash of it), so
a silence whose matchers are all of one alert's labels, each `=`, matches that alert and no
other: never a group's common labels, which may be just `severity=critical`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from bot.markup import escape
from bot.store import Store, utcnow

ALERTMANAGER_TIMEOUT_S = 10.0  # one silence call, connect to last byte

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS alert_members (
  group_id INTEGER NOT NULL, fingerprint TEXT NOT NULL, labels TEXT NOT NULL,
  status TEXT NOT NULL, PRIMARY KEY (group_id, fingerprint))""",
    """CREATE TABLE IF NOT EXISTS silence_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT, group_id INTEGER NOT NULL, cluster TEXT NOT NULL,
  channel TEXT NOT NULL, requester TEXT NOT NULL, alerts TEXT NOT NULL,
  seconds INTEGER NOT NULL, nonce TEXT NOT NULL, approvals_needed INTEGER NOT NULL,
  state TEXT NOT NULL, approvers TEXT NOT NULL DEFAULT '[]', ts TEXT,
  created_at TEXT NOT NULL, silence_ids TEXT NOT NULL DEFAULT '[]')""",
)
Labels = dict[str, str]


class SilenceError(Exception):
    """Alertmanager refused or could not be reached; the message says which, for people."""


def matchers(labels: Labels) -> list[dict[str, Any]]:
    """Every label of one alert, each `=`: the silence matches exactly that alert."""
    return [
        {"name": name, "value": value, "isRegex": False, "isEqual": True}
        for name, value in sorted(labels.items())
    ]


def shown(labels: Labels) -> str:
    """An alert's labels as Alertmanager writes matchers, escaped for Slack."""
    inner = ", ".join(f'{name}="{value}"' for name, value in sorted(labels.items()))
    return escape("{" + inner + "}")


def fingerprint(labels: Labels) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SilenceRequest:
    id: int
    group_id: int
    cluster: str
    channel: str
    requester: str
    alerts: list[Labels]
    duration: timedelta
    nonce: str
    approvals_needed: int
    state: str  # proposed → (pending →) created | rejected
    approvers: list[str]
    ts: str | None
    created_at: datetime
    silence_ids: list[str]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SilenceRequest:
        return cls(
            id=row["id"],
            group_id=row["group_id"],
            cluster=row["cluster"],
            channel=row["channel"],
            requester=row["requester"],
            alerts=json.loads(row["alerts"]),
            duration=timedelta(seconds=row["seconds"]),
            nonce=row["nonce"],
            approvals_needed=row["approvals_needed"],
            state=row["state"],
            approvers=json.loads(row["approvers"]),
            ts=row["ts"],
            created_at=datetime.fromisoformat(row["created_at"]),
            silence_ids=json.loads(row["silence_ids"]),
        )


class SilenceRecords:
    """The side tables, on the store's own connection and transactions."""

    def __init__(self, store: Store) -> None:
        self._store = store
        with store.transaction() as conn:
            for statement in SCHEMA:
                conn.execute(statement)

    def remember_alerts(self, group_id: int, alerts: Sequence[tuple[str, Labels, str]]) -> None:
        """Each alert of a webhook: (fingerprint, labels, status), newest status wins."""
        with self._store.transaction() as conn:
            for print_, labels, status in alerts:
                conn.execute(
                    "INSERT OR REPLACE INTO alert_members VALUES (?, ?, ?, ?)",
                    [group_id, print_ or fingerprint(labels), json.dumps(labels), status],
                )

    def firing_alerts(self, group_id: int) -> list[Labels]:
        with self._store.transaction() as conn:
            rows = conn.execute(
                "SELECT labels FROM alert_members WHERE group_id = ? AND status = 'firing' "
                "ORDER BY fingerprint",
                [group_id],
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def propose(
        self,
        *,
        group_id: int,
        cluster: str,
        channel: str,
        requester: str,
        alerts: list[Labels],
        duration: timedelta,
        approvals_needed: int,
    ) -> SilenceRequest:
        with self._store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO silence_requests (group_id, cluster, channel, requester, alerts, "
                "seconds, nonce, approvals_needed, state, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'proposed', ?)",
                [
                    group_id,
                    cluster,
                    channel,
                    requester,
                    json.dumps(alerts),
                    int(duration.total_seconds()),
                    secrets.token_urlsafe(12),
                    approvals_needed,
                    utcnow().isoformat(),
                ],
            )
            assert cursor.lastrowid is not None
            request_id = int(cursor.lastrowid)
        found = self.find(request_id)
        assert found is not None
        return found

    def find(self, request_id: int) -> SilenceRequest | None:
        with self._store.transaction() as conn:
            cursor = conn.execute("SELECT * FROM silence_requests WHERE id = ?", [request_id])
            row = cursor.fetchone()
            columns = [column[0] for column in cursor.description]
        return SilenceRequest.from_row(dict(zip(columns, row, strict=True))) if row else None

    def move(self, request_id: int, *, from_state: str, to: str, **fields: Any) -> bool:
        """Change state only from `from_state`: a second click finds it moved on."""
        sets = ", ".join(f"{name} = ?" for name in ["state", *fields])
        values = [to, *(json.dumps(v) if isinstance(v, list) else v for v in fields.values())]
        with self._store.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE silence_requests SET {sets} WHERE id = ? AND state = ?",  # noqa: S608
                [*values, request_id, from_state],
            )
        return cursor.rowcount == 1

    def add_approver(self, request_id: int, voter: str) -> list[str] | None:
        """The approvers after `voter`'s vote; None when they had already voted."""
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT approvers FROM silence_requests WHERE id = ?", [request_id]
            ).fetchone()
            approvers: list[str] = json.loads(row[0])
            if voter in approvers:
                return None
            approvers.append(voter)
            conn.execute(
                "UPDATE silence_requests SET approvers = ? WHERE id = ?",
                [json.dumps(approvers), request_id],
            )
        return approvers


async def create_silence(
    alertmanager_url: str, labels: Labels, *, duration: timedelta, created_by: str, comment: str
) -> str:
    """POST /api/v2/silences (Alertmanager's openapi.yaml, `postableSilence`); its silenceID."""
    now = utcnow()
    body = {
        "matchers": matchers(labels),
        "startsAt": now.isoformat(),
        "endsAt": (now + duration).isoformat(),
        "createdBy": created_by,
        "comment": comment,
    }
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{alertmanager_url.rstrip('/')}/api/v2/silences",
                json=body,
                timeout=aiohttp.ClientTimeout(total=ALERTMANAGER_TIMEOUT_S),
            ) as response,
        ):
            answer = await response.json(content_type=None)
    except TimeoutError as error:  # its str() is empty: say what happened
        raise SilenceError(
            f"Alertmanager did not answer within {ALERTMANAGER_TIMEOUT_S:g} s; "
            "the silence was not set"
        ) from error
    except (aiohttp.ClientError, ValueError) as error:
        raise SilenceError(f"cannot reach Alertmanager to silence: {error}") from error
    if response.status != 200 or not isinstance(answer, dict):
        raise SilenceError(f"Alertmanager refused the silence ({response.status}): {answer}")
    return str(answer.get("silenceID", "?"))
