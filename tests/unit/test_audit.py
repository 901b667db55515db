"""The audit chain: keyed, append-only, anchored; tamper named by `kubegate audit verify`;
votes counted only from the chain; secrets and the key never written to the database."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.anchors import AnchorFile, Anchoring, anchor_file_next_to
from bot.audit import AuditLog
from bot.audit_keys import key_file_next_to
from bot.chain import GENESIS, UNKEYED, link_hash
from bot.redact import Redactor
from bot.store import Job, JobState, Store
from tests.unit import cli_in_process


def kubegate(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli_in_process.kubegate({"KUBEGATE_DB": str(db), "PATH": "/usr/bin:/bin"}, *args)


def anchor(store: Store, db: Path) -> None:
    """What a running kubegate does at each job end: the chain head into the anchor file."""
    head = store.chain_head()
    assert head is not None
    sinks = [AnchorFile(anchor_file_next_to(db))]
    Anchoring(
        lambda: (head.seq, head.hash, head.keyed_from), sinks, every=timedelta(1)
    ).anchor_now()


def filled_log(db: Path, redactor: Redactor | None = None) -> AuditLog:
    store = Store(db)
    log = AuditLog(store, redactor or Redactor())
    log.record(
        "request",
        actor="U0ALICE",
        job_id=1,
        cluster="prod",
        target="worker-2",
        command="cordon worker-2",
    )
    log.record("vote", actor="U0BOB", job_id=1, cluster="prod", target="worker-2", approve=True)
    log.record("step.finish", actor="system", job_id=1, cluster="prod", target="worker-2", ok=True)
    anchor(store, db)
    return log


def pending_cordon(store: Store) -> Job:
    now = datetime.now(UTC)
    return store.create_job(
        cluster="prod",
        verb="cordon",
        target="worker-2",
        requester="U0ALICE",
        channel="C0OPS",
        command_text="cordon worker-2",
        state=JobState.PENDING_APPROVAL,
        plan={},
        plan_digest="d1",
        approvals_needed=1,
        created_at=now,
        approval_deadline=now,
    )


def attacker(db: Path) -> sqlite3.Connection:
    """Someone with the database file (not the key): drops the append-only triggers first."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_refuses_update")
    conn.execute("DROP TRIGGER audit_refuses_delete")
    return conn


def test_an_untouched_chain_verifies(tmp_path: Path) -> None:
    log = filled_log(tmp_path / "k.db")
    assert log.verify(anchor_file=anchor_file_next_to(tmp_path / "k.db")) is None
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 0 and "3 event(s) verified" in result.stdout
    assert "newest anchor (event 3" in result.stdout


def test_the_audit_table_refuses_update_and_delete(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    with sqlite3.connect(tmp_path / "k.db") as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE refused"):
            conn.execute("UPDATE audit SET actor = 'U0MALLORY' WHERE id = 2")
        with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE refused"):
            conn.execute("DELETE FROM audit WHERE id = 3")
    assert kubegate(tmp_path / "k.db", "audit", "verify").returncode == 0


def test_tampering_with_one_row_is_named_by_audit_verify(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    with attacker(tmp_path / "k.db") as conn:
        conn.execute("UPDATE audit SET actor = 'U0MALLORY' WHERE id = 2")
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1
    assert "BROKEN at event 2" in result.stdout and "does not match its keyed hash" in result.stdout


def test_deleting_a_row_is_named_too(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    with attacker(tmp_path / "k.db") as conn:
        conn.execute("DELETE FROM audit WHERE id = 2")
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1 and "event 2 is missing" in result.stdout


def test_deleting_the_newest_events_fails_verify_against_the_anchor(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    with attacker(tmp_path / "k.db") as conn:
        conn.execute("DELETE FROM audit WHERE id >= 2")
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1
    assert (
        "the chain ends at event 1" in result.stdout and "events 2–3 were deleted" in result.stdout
    )


def recompute(db: Path, *, scheme: str, key: bytes = b"guessed key") -> None:
    """Edit event 2, then recompute every hash from genesis with `key` (a guess, unless the
    attacker also took the key file)."""
    with attacker(db) as conn:
        conn.execute("UPDATE audit SET actor = 'U0MALLORY' WHERE id = 2")
        conn.row_factory = sqlite3.Row
        prev = GENESIS
        for row in conn.execute("SELECT * FROM audit ORDER BY id").fetchall():
            fields = ("id", "time", "actor", "action", "job_id", "cluster", "target")
            event = {**{k: row[k] for k in fields}, "details": json.loads(row["details"])}
            forged = link_hash(scheme, None if scheme == UNKEYED else key, prev, event)
            conn.execute(
                "UPDATE audit SET prev_hash = ?, hash = ?, scheme = ? WHERE id = ?",
                [prev, forged, scheme, row["id"]],
            )
            prev = forged


def test_recomputing_the_whole_chain_without_the_key_fails_verify(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    recompute(tmp_path / "k.db", scheme="hmac-sha256")
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1
    assert "BROKEN at event 1" in result.stdout and "without kubegate's audit key" in result.stdout


def test_rewriting_the_chain_as_an_old_unkeyed_one_fails_verify_against_the_anchor(
    tmp_path: Path,
) -> None:
    filled_log(tmp_path / "k.db")
    recompute(tmp_path / "k.db", scheme=UNKEYED)
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1
    assert "BROKEN at event 3" in result.stdout and "differs from the anchor" in result.stdout


def test_an_attacker_with_the_key_file_too_is_caught_by_the_anchor(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    key = bytes.fromhex(key_file_next_to(tmp_path / "k.db").read_text())
    recompute(tmp_path / "k.db", scheme="hmac-sha256", key=key)
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1
    assert "BROKEN at event 3" in result.stdout and "differs from the anchor" in result.stdout


def test_the_siems_copy_of_an_anchor_catches_a_rewritten_anchor_file_too(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    siem_copy = AnchorFile(anchor_file_next_to(tmp_path / "k.db")).newest()
    assert siem_copy is not None
    key = bytes.fromhex(key_file_next_to(tmp_path / "k.db").read_text())
    recompute(tmp_path / "k.db", scheme="hmac-sha256", key=key)
    anchor_file_next_to(tmp_path / "k.db").unlink()
    anchor(Store(tmp_path / "k.db"), tmp_path / "k.db")  # the attacker's own anchor file
    assert kubegate(tmp_path / "k.db", "audit", "verify").returncode == 0
    given = f"{siem_copy.seq}:{siem_copy.hash}"
    result = kubegate(tmp_path / "k.db", "audit", "verify", "--anchor", given)
    assert result.returncode == 1
    assert "BROKEN at event 3" in result.stdout and "given on the command line" in result.stdout


def test_a_missing_anchor_file_fails_verify(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    anchor_file_next_to(tmp_path / "k.db").unlink()
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1 and "no anchor in" in result.stdout


def test_a_forged_vote_row_does_not_count_and_fails_verify(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    log = AuditLog(store, Redactor())
    assert store.record_vote(7, voter="U0BOB", approve=True, plan_digest="d1")
    log.record("vote", actor="U0BOB", job_id=7, approve=True, plan_digest="d1")
    anchor(store, tmp_path / "k.db")
    with sqlite3.connect(tmp_path / "k.db") as conn:
        conn.execute(
            "INSERT INTO votes VALUES (7, 'U0CAROL', 1, 'd1', '2026-11-30T04:00:00+00:00')"
        )
    assert [v.voter for v in store.votes(7)] == ["U0BOB"]
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1
    assert (
        "vote of U0CAROL on job #7 is in the votes table but not in the audit chain"
        in result.stdout
    )


def test_a_vote_event_forged_without_the_key_does_not_count(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    AuditLog(store, Redactor()).record("request", actor="U0ALICE", job_id=7)
    head = store.chain_head()
    assert head is not None
    event = {
        "id": 2,
        "time": "2026-11-30T04:00:00.000+00:00",
        "actor": "U0CAROL",
        "action": "vote",
        "job_id": 7,
        "cluster": None,
        "target": None,
        "details": {"approve": True, "plan_digest": "d1"},
    }
    forged = link_hash("hmac-sha256", b"guessed key", head.hash, event)
    with sqlite3.connect(tmp_path / "k.db") as conn:
        conn.execute(
            "INSERT INTO audit VALUES (2, ?, 'U0CAROL', 'vote', 7, NULL, NULL, ?, ?, ?, ?)",
            [
                event["time"],
                '{"approve":true,"plan_digest":"d1"}',
                head.hash,
                forged,
                "hmac-sha256",
            ],
        )
    assert store.votes(7) == []


def test_a_job_state_edited_outside_kubegate_fails_verify(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    pending_cordon(store)
    anchor(store, tmp_path / "k.db")
    with sqlite3.connect(tmp_path / "k.db") as conn:
        conn.execute("UPDATE jobs SET state = 'APPROVED' WHERE id = 1")
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1
    assert (
        "job #1 is APPROVED in the jobs table but the audit chain last moved it to PENDING_APPROVAL"
        in result.stdout
    )


def old_unkeyed_database(db: Path) -> None:
    """A database as kubegate wrote it before the keyed chain: plain sha256 links, no triggers."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, "
            "actor TEXT NOT NULL, action TEXT NOT NULL, job_id INTEGER, cluster TEXT, target TEXT, "
            "details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
        )
        prev = GENESIS
        for number, action in enumerate(["config.loaded", "request"], start=1):
            event = {
                "id": number,
                "time": f"2026-01-0{number}T00:00:00.000+00:00",
                "actor": "system",
                "action": action,
                "job_id": None,
                "cluster": None,
                "target": None,
                "details": {},
            }
            digest = hashlib.sha256(
                (prev + json.dumps(event, sort_keys=True, separators=(",", ":"))).encode()
            )
            conn.execute(
                "INSERT INTO audit VALUES (?, ?, 'system', ?, NULL, NULL, NULL, '{}', ?, ?)",
                [number, event["time"], action, prev, digest.hexdigest()],
            )
            prev = digest.hexdigest()


def test_a_database_from_before_the_keyed_chain_verifies_and_says_where_the_key_begins(
    tmp_path: Path,
) -> None:
    old_unkeyed_database(tmp_path / "k.db")
    store = Store(tmp_path / "k.db")
    AuditLog(store, Redactor()).record("config.loaded", actor="system")
    anchor(store, tmp_path / "k.db")
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 0, result.stdout
    assert "4 event(s) verified" in result.stdout
    assert "events 1–2 come from an earlier kubegate with plain sha256 links" in result.stdout
    assert [e["action"] for e in AuditLog(store, Redactor()).events()][2] == "audit.keyed"
    with attacker(tmp_path / "k.db") as conn:  # the old events are pinned by the keyed ones
        conn.execute("UPDATE audit SET actor = 'U0MALLORY' WHERE id = 1")
    assert kubegate(tmp_path / "k.db", "audit", "verify").returncode == 1


def test_verify_without_the_key_checks_what_it_can_and_says_what_it_could_not(
    tmp_path: Path,
) -> None:
    filled_log(tmp_path / "k.db")
    key_file_next_to(tmp_path / "k.db").rename(tmp_path / "elsewhere")
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 0 and "keyed hashes were NOT recomputed" in result.stdout
    assert not key_file_next_to(tmp_path / "k.db").exists()  # verify never makes a key


def test_export_writes_one_json_event_per_line(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    lines = kubegate(tmp_path / "k.db", "audit", "export", "--format", "jsonl").stdout.splitlines()
    assert len(lines) == 3 and '"actor": "U0BOB"' in lines[1] and '"hash": ' in lines[1]
    assert '"scheme": "hmac-sha256"' in lines[1]


def test_secrets_and_the_audit_key_never_reach_the_database(tmp_path: Path) -> None:
    redactor = Redactor()
    redactor.register("xoxb-planted-marker-secret")
    store = Store(tmp_path / "k.db")
    log = AuditLog(store, redactor)
    log.record(
        "step.finish",
        actor="system",
        output="token is xoxb-planted-marker-secret",
        join_command="kubeadm join x",
    )
    assert log.verify() is None
    store.close()
    written = b"".join(p.read_bytes() for p in tmp_path.glob("k.db*") if p.suffix != ".audit-key")
    key = key_file_next_to(tmp_path / "k.db").read_text().strip()
    assert b"xoxb-planted-marker-secret" not in written and b"kubeadm join x" not in written
    assert key.encode() not in written and bytes.fromhex(key) not in written


def test_files_an_older_version_left_readable_are_narrowed_to_0600(tmp_path: Path) -> None:
    old_unkeyed_database(tmp_path / "k.db")
    (tmp_path / "k.db").chmod(0o644)
    key_file_next_to(tmp_path / "k.db").write_text("ab" * 32 + "\n")
    key_file_next_to(tmp_path / "k.db").chmod(0o644)
    store = Store(tmp_path / "k.db")
    AuditLog(store, Redactor()).record("config.loaded", actor="system")
    files = [tmp_path / "k.db", tmp_path / "k.db-wal", tmp_path / "k.db-shm"]
    files.append(key_file_next_to(tmp_path / "k.db"))
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {
        p.name: "0o600" for p in files
    }
    assert store.chain_key == bytes.fromhex("ab" * 32)


def test_a_vote_recorded_through_the_audit_log_counts_once_and_verifies(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    job = pending_cordon(store)
    log = AuditLog(store, Redactor())
    assert log.record_vote(job, voter="U0BOB", approve=True, plan_digest="d1")
    assert not log.record_vote(job, voter="U0BOB", approve=True, plan_digest="d1")  # double click
    assert [(v.voter, v.approve) for v in store.votes(job.id)] == [("U0BOB", True)]
    assert [e["action"] for e in log.events(job_id=job.id)] == ["job.state", "vote"]
    anchor(store, tmp_path / "k.db")
    assert kubegate(tmp_path / "k.db", "audit", "verify").returncode == 0


def test_deleting_only_the_newest_event_is_said_as_one_event(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    with attacker(tmp_path / "k.db") as conn:
        conn.execute("DELETE FROM audit WHERE id = 3")
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1
    assert "the chain ends at event 2" in result.stdout and "event 3 was deleted" in result.stdout
