"""Files only kubegate's own user may read (0600): the database and its WAL/SHM, the audit key,
the anchor file.

Each is created with mode 0600 in the `open` call itself, so there is no moment at which it is
readable by others, and an existing one written by an older version is narrowed to 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE = 0o600


def ensure_private(path: Path) -> None:
    """Create `path` empty with 0600 if it is missing; narrow it to 0600 if it exists."""
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, PRIVATE)
    try:
        os.fchmod(descriptor, PRIVATE)
    finally:
        os.close(descriptor)


def append_private(path: Path, text: str) -> None:
    """Append `text` to `path` (created 0600); one write call, so lines never interleave."""
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, PRIVATE)
    try:
        os.fchmod(descriptor, PRIVATE)
        os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)


def create_private(path: Path, text: str) -> bool:
    """Write a new 0600 file; False (and nothing written) if it already exists."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, PRIVATE)
    except FileExistsError:
        return False
    try:
        os.write(descriptor, text.encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return True


def sqlite_files(database: Path) -> list[Path]:
    """The database and the files SQLite keeps beside it in WAL mode."""
    return [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
