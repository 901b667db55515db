"""The etcd snapshots kubegate keeps hold every Secret of the cluster: only kubegate's own user
may read them (issue 12, item 7)."""

from __future__ import annotations

import stat

from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import click, request, wait_text


async def test_every_kept_etcd_snapshot_and_its_checksum_are_readable_by_kubegate_alone(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    for _ in range(2):  # the second copy lands beside the first: neither is ever widened
        root = await request(testbed, "U0ALICE", "backup etcd")
        await click(testbed, "U0BOB", root, "Approve")
        await wait_text(testbed, root.ts, "SUCCEEDED", timeout=30)

    directory = testbed.directory / "backups" / "testbed"
    kept = sorted(directory.glob("etcd-*.db*"))
    assert len(kept) == 4, kept  # two snapshots, each with its .sha256
    assert {oct(stat.S_IMODE(path.stat().st_mode)) for path in kept} == {oct(0o600)}
    assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0
