"""Anchors: the chain head leaves the database at start, at job ends and every few minutes,
and a SIEM that is down costs a warning, never the other copies."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.anchors import AnchorFile, Anchoring, AnchorSink, HttpSink, SyslogSink
from bot.audit import AuditLog
from bot.config import AuditConfig
from bot.redact import Redactor
from bot.store import JobState, Store


def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait for the worker thread's result (a condition, polled; never a fixed pause)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def anchoring_for(store: Store, sinks: list[AnchorSink], every: timedelta) -> Anchoring:
    def head() -> tuple[int, str, int | None] | None:
        found = store.chain_head()
        return (found.seq, found.hash, found.keyed_from) if found else None

    anchoring = Anchoring(head, sinks, every=every)
    store.after_job_end.append(anchoring.job_ended)
    store.after_event.append(anchoring.event_recorded)
    store.before_close.append(anchoring.stop)
    return anchoring


def new_job(store: Store) -> int:
    now = datetime.now(UTC)
    job = store.create_job(
        cluster="prod",
        verb="cordon",
        target="worker-2",
        requester="U0ALICE",
        channel="C0OPS",
        command_text="cordon worker-2",
        state=JobState.APPROVED,
        plan={},
        plan_digest="d1",
        approvals_needed=1,
        created_at=now,
        approval_deadline=now,
    )
    return job.id


def test_the_first_event_of_a_new_chain_is_anchored_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    anchors = AnchorFile(tmp_path / "anchors")
    anchoring_for(store, [anchors], timedelta(hours=1)).start()
    assert anchors.newest() is None  # nothing to vouch for yet
    AuditLog(store, Redactor()).record("config.loaded", actor="system")
    newest = anchors.newest()
    assert newest is not None and newest.seq == 1 and newest.keyed_from == 1
    store.close()


def test_a_job_end_anchors_the_chain_head(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    anchors = AnchorFile(tmp_path / "anchors")
    anchoring_for(store, [anchors], timedelta(hours=1)).start()
    job = new_job(store)
    store.transition(job, from_states=[JobState.APPROVED], to=JobState.RUNNING)
    store.transition(job, from_states=[JobState.RUNNING], to=JobState.SUCCEEDED)
    head = store.chain_head()
    assert head is not None
    until(lambda: (newest := anchors.newest()) is not None and newest.seq == head.seq)
    store.close()


def test_a_new_head_is_anchored_within_a_period_and_an_idle_one_is_not_repeated(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "k.db")
    log = AuditLog(store, Redactor())
    log.record("config.loaded", actor="system")
    anchors = AnchorFile(tmp_path / "anchors")
    anchoring_for(store, [anchors], timedelta(milliseconds=20)).start()
    for expected in (2, 3):
        log.record("alert", actor="system")  # no job ends: only the period anchors it
        until(lambda seq=expected: (newest := anchors.newest()) is not None and newest.seq == seq)
    store.close()
    assert [json.loads(line)["seq"] for line in anchors.path.read_text().splitlines()] == [1, 2, 3]


def test_a_siem_that_is_down_costs_a_warning_not_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/anchors"
    store = Store(tmp_path / "k.db")
    AuditLog(store, Redactor()).record("config.loaded", actor="system")
    anchors = AnchorFile(tmp_path / "anchors")
    anchoring = anchoring_for(store, [HttpSink(url, timeout=2), anchors], timedelta(hours=1))
    with caplog.at_level(logging.WARNING, logger="kubegate.anchors"):
        assert anchoring.anchor_now() is not None
    assert anchors.newest() is not None
    assert "could not anchor the audit chain to http" in caplog.text
    store.close()


def test_a_syslog_anchor_is_one_rfc5424_datagram(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as siem:
        siem.bind(("127.0.0.1", 0))
        siem.settimeout(10)
        store = Store(tmp_path / "k.db")
        AuditLog(store, Redactor()).record("config.loaded", actor="system")
        sink = SyslogSink(f"127.0.0.1:{siem.getsockname()[1]}")
        anchored = anchoring_for(store, [sink], timedelta(hours=1)).anchor_now()
        datagram = siem.recv(4096).decode()
    assert anchored is not None
    header, _, payload = datagram.partition(" audit-anchor - ")
    assert header.startswith("<110>1 ") and " kubegate " in header
    assert json.loads(payload) == {
        "seq": 1,
        "hash": anchored.hash,
        "time": anchored.time,
        "keyed_from": 1,
    }
    store.close()


def test_anchor_sinks_are_checked_when_the_config_is_read() -> None:
    with pytest.raises(ValueError, match="is not host:port"):
        AuditConfig(anchor_syslog="siem.example.com")
    with pytest.raises(ValueError, match="is not an http"):
        AuditConfig(anchor_url="siem.example.com/anchors")
    assert AuditConfig(anchor_syslog="[::1]:514", anchor_url="https://siem/anchors").anchor_syslog
