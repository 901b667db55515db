"""`/kube status` says which kubegate runs the jobs, which stand by, and what Slack has not yet
received, from the store alone (issue 13's lease and outbox, seen by an operator)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.lease import LEASE_SECONDS, JobsLease, jobs_ownership
from bot.outbox import OutboxRows, outbox_backlog
from bot.render import ago, jobs_owner_lines, slack_backlog_lines
from bot.store import Store

HERE = (socket.gethostname(), os.getpid())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "kubegate.db")
    yield store
    store.close()


def owner_lines(store: Store, *, now: float | None = None) -> list[str]:
    return jobs_owner_lines(
        jobs_ownership(store), now=time.time() if now is None else now, here=HERE
    )


def test_status_names_the_kubegate_that_runs_the_jobs_and_when_it_renewed_its_lease(
    store: Store,
) -> None:
    lease = JobsLease(store)
    assert lease.try_take() is None

    lines = owner_lines(store, now=time.time() + 3)

    host, pid = HERE
    assert lines == [
        f"Jobs run by: kubegate on host {host} pid {pid} (lease renewed 3 s ago, this one)"
    ]


async def test_a_second_kubegate_refused_the_lease_is_shown_standing_by_until_it_stops(
    store: Store,
) -> None:
    owner, second = JobsLease(store), JobsLease(store)
    assert owner.try_take() is None
    assert second.try_take() is not None  # refused: it stands by

    lines = owner_lines(store)
    assert len(lines) == 2
    assert lines[1].startswith(f"Standing by: kubegate on host {HERE[0]} pid {HERE[1]} ")
    assert "runs no job until the lease is free" in lines[1]

    await second.release()  # a standby stopped cleanly
    assert len(owner_lines(store)) == 1


def test_a_standby_not_seen_for_longer_than_a_lease_is_not_shown(store: Store) -> None:
    owner, second = JobsLease(store), JobsLease(store)
    assert owner.try_take() is None
    assert second.try_take() is not None
    later = time.time() + LEASE_SECONDS + 1  # killed: it never asked again
    assert not any(line.startswith("Standing by") for line in owner_lines(store, now=later))


def test_with_no_live_owner_status_says_a_restarted_kubegate_will_resume_the_jobs(
    store: Store,
) -> None:
    lease = JobsLease(store, seconds=0)  # took the lease, then stopped renewing it
    assert lease.try_take() is None
    assert owner_lines(store, now=time.time() + 1) == [
        "Jobs run by: no live owner — a restarted kubegate will resume them"
    ]


def test_with_no_live_owner_and_a_standby_status_says_the_standby_takes_over(
    store: Store,
) -> None:
    stalled = JobsLease(store, seconds=0)
    assert stalled.try_take() is None
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO lease_standbys VALUES ('other', 'kubegate-1.elsewhere', 42, ?)",
            [time.time()],
        )
    lines = owner_lines(store)
    assert lines[0] == (
        "Jobs run by: no live owner — the kubegate standing by takes them over at its next try"
    )
    assert lines[1].startswith("Standing by: kubegate on host kubegate-1.elsewhere pid 42 ")


def test_a_database_no_kubegate_serve_ran_on_says_nothing_about_owners(store: Store) -> None:
    assert owner_lines(store) == []  # the console runs its jobs itself, with no lease


def test_a_lease_taken_before_renewals_were_kept_still_reads(tmp_path: Path) -> None:
    store = Store(tmp_path / "kubegate.db")
    with store.transaction() as conn:  # the table as an earlier kubegate made it
        conn.execute(
            "CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, "
            "token INTEGER NOT NULL, expires_at REAL NOT NULL, host TEXT NOT NULL, "
            "pid INTEGER NOT NULL)"
        )
        conn.execute(
            "INSERT INTO leases VALUES ('jobs', 'old', 3, ?, 'kubegate-0.elsewhere', 7)",
            [time.time() + 60],
        )
    JobsLease(store)  # a newer kubegate starting on it
    lines = owner_lines(store)
    assert lines[0].startswith("Jobs run by: kubegate on host kubegate-0.elsewhere pid 7 ")
    assert "lease held until" in lines[0]
    store.close()


def stored_posts(store: Store, count: int) -> OutboxRows:
    rows = OutboxRows(store)
    for index in range(count):
        rows.add(kind="post", channel="C0OPS", target=None, body={"headline": f"step {index}"})
    return rows


def test_waiting_messages_are_counted_with_their_age_and_what_slack_last_answered(
    store: Store,
) -> None:
    rows = stored_posts(store, 3)
    head = rows.due(now=time.time(), owner="me")[0]
    rows.retry_later(head, after=8, error="HTTP 500")

    lines = slack_backlog_lines(outbox_backlog(store), now=time.time() + 125)

    assert len(lines) == 1
    assert lines[0].startswith("Slack: 3 messages waiting to be delivered (oldest 2 min ago; ")
    assert "last error: HTTP 500" in lines[0]
    assert "next try in 0 s" in lines[0]  # overdue: it is being tried


def test_an_empty_outbox_says_nothing_about_slack(store: Store) -> None:
    assert slack_backlog_lines(outbox_backlog(store), now=time.time()) == []  # no outbox table
    rows = stored_posts(store, 1)
    letter = rows.due(now=time.time(), owner="me")[0]
    rows.delivered(letter, "1700000000.000100")
    assert slack_backlog_lines(outbox_backlog(store), now=time.time()) == []


def test_what_slack_answered_is_shown_literally_never_as_a_mention_or_link(store: Store) -> None:
    rows = stored_posts(store, 1)
    head = rows.due(now=time.time(), owner="me")[0]
    rows.retry_later(head, after=1, error="HTTP 500 <!channel> <https://evil.example|click>")

    [line] = slack_backlog_lines(outbox_backlog(store), now=time.time())

    assert "1 message waiting" in line
    assert "<!channel>" not in line and "<https" not in line
    assert "&lt;!channel&gt;" in line


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(-2, "0 s"), (3.7, "3 s"), (125, "2 min"), (3 * 3600 + 5, "3 h"), (3 * 86400, "3 d")],
)
def test_durations_read_at_a_glance(seconds: float, said: str) -> None:
    assert ago(seconds) == said
