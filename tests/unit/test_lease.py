"""One owner for the jobs of a database: a second kubegate waits; a stale owner is fenced off."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.lease import JobsLease, LeaseLost
from bot.store import Store


def test_a_second_kubegate_does_not_take_the_jobs_while_the_first_holds_them(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "kubegate.db")
    first, second = JobsLease(store), JobsLease(store)
    assert first.try_take() is None
    holder = second.try_take()
    assert holder is not None and holder.owner == first.owner
    first.fence()  # still the owner
    with pytest.raises(LeaseLost):
        second.fence()
    store.close()


def test_an_owner_whose_lease_expired_is_fenced_off_once_another_took_over(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "kubegate.db")
    stalled, standby = JobsLease(store, seconds=0), JobsLease(store)
    assert stalled.try_take() is None
    assert standby.try_take() is None  # the lease had expired: taken over
    assert standby.token is not None and stalled.token is not None
    assert standby.token > stalled.token
    with pytest.raises(LeaseLost, match="held by kubegate pid"):
        stalled.fence()
    store.close()


async def test_a_clean_stop_hands_the_jobs_over_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "kubegate.db")
    first, second = JobsLease(store), JobsLease(store)
    assert await first.take()
    await first.release()
    assert second.try_take() is None
    await second.release()
    store.close()


def test_an_owner_on_another_host_is_waited_for_until_its_lease_expires(tmp_path: Path) -> None:
    store = Store(tmp_path / "kubegate.db")
    lease = JobsLease(store)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO leases (name, owner, token, expires_at, host, pid) "
            "VALUES ('jobs', 'other', 7, ?, 'kubegate-0.elsewhere', 1)",
            [time.time() + 60],
        )
    holder = lease.try_take()
    assert holder is not None and holder.describe() == "kubegate pid 1 on kubegate-0.elsewhere"

    with store.transaction() as conn:
        conn.execute("UPDATE leases SET expires_at = ?", [time.time() - 1])
    assert lease.try_take() is None and lease.token == 8  # a newer token fences the old owner
    store.close()
