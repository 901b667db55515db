"""`/kube backups`: each kept backup as an operator needs it to pick one to restore."""

from __future__ import annotations

import time

from playbooks.backup_files import KeptBackup, backups_table


def test_the_backups_list_shows_name_time_size_sha256_prefix_and_age() -> None:
    taken = time.mktime(time.strptime("2026-11-30 02:00", "%Y-%m-%d %H:%M")) - time.timezone
    kept = [KeptBackup("etcd-prod-job4-20261130T020000Z", taken, 3 * 1024 * 1024, "ab" * 32)]
    header, row = backups_table(kept, now=taken + 5400)
    assert header.split()[:3] == ["NAME", "TAKEN", "(UTC)"]
    assert row.split() == [
        "etcd-prod-job4-20261130T020000Z",
        "2026-11-30",
        "02:00",
        "3.0",
        "MiB",
        "abababababab",
        "1.5",
        "h",
    ]
