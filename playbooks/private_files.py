"""Files kubegate writes on its own host (etcd snapshots hold every Secret of a cluster): created
with mode 0600 from the first moment, never widened and never chmod-ed after writing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE = 0o600


def create_private(path: Path | str, mode: int = PRIVATE) -> int:
    """A new, empty file open for writing, created with `mode` (the umask can only narrow it);
    an older file of that name is removed first, so its mode is never inherited. The fd."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)


def write_private(path: Path | str, data: bytes, mode: int = PRIVATE) -> None:
    fd = create_private(path, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
