"""Files kubegate writes for itself are 0600 from their first byte, whatever was there before."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from playbooks.private_files import create_private, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_private_file_is_created_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        os.close(create_private(tmp_path / "etcd-prod.db"))
    finally:
        os.umask(previous)
    assert mode(tmp_path / "etcd-prod.db") == 0o600


def test_a_world_readable_file_of_the_same_name_is_replaced_not_reused(tmp_path: Path) -> None:
    old = tmp_path / "etcd-prod.db.sha256"
    old.write_text("stale")
    old.chmod(0o644)
    write_private(old, b"abc  etcd-prod.db\n")
    assert mode(old) == 0o600 and old.read_text() == "abc  etcd-prod.db\n"
