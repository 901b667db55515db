"""The audit chain: appended, verified, tamper named by the CLI, secrets never written."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from bot.audit import AuditLog
from bot.redact import Redactor
from bot.store import Store


def kubegate(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kubegate"), *args],
        env={"KUBEGATE_DB": str(db), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def filled_log(db: Path, redactor: Redactor | None = None) -> AuditLog:
    log = AuditLog(Store(db), redactor or Redactor())
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
    return log


def test_an_untouched_chain_verifies(tmp_path: Path) -> None:
    log = filled_log(tmp_path / "k.db")
    assert log.verify() is None
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 0 and "3 event(s) verified" in result.stdout


def test_tampering_with_one_row_is_named_by_audit_verify(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    with sqlite3.connect(tmp_path / "k.db") as conn:
        conn.execute("""UPDATE audit SET actor = 'U0MALLORY' WHERE id = 2""")
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1
    assert "BROKEN at event 2" in result.stdout and "does not match its hash" in result.stdout


def test_deleting_a_row_is_named_too(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    with sqlite3.connect(tmp_path / "k.db") as conn:
        conn.execute("DELETE FROM audit WHERE id = 2")
    result = kubegate(tmp_path / "k.db", "audit", "verify")
    assert result.returncode == 1 and "event 2 is missing" in result.stdout


def test_export_writes_one_json_event_per_line(tmp_path: Path) -> None:
    filled_log(tmp_path / "k.db")
    lines = kubegate(tmp_path / "k.db", "audit", "export", "--format", "jsonl").stdout.splitlines()
    assert len(lines) == 3 and '"actor": "U0BOB"' in lines[1] and '"hash": ' in lines[1]


def test_secrets_never_reach_the_audit_log(tmp_path: Path) -> None:
    redactor = Redactor()
    redactor.register("xoxb-planted-marker-secret")
    log = AuditLog(Store(tmp_path / "k.db"), redactor)
    log.record(
        "step.finish",
        actor="system",
        output="token is xoxb-planted-marker-secret",
        join_command="kubeadm join x",
    )
    assert b"xoxb-planted-marker-secret" not in (tmp_path / "k.db").read_bytes()
    assert b"kubeadm join x" not in (tmp_path / "k.db").read_bytes()
    assert log.verify() is None
