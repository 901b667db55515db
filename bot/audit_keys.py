"""The audit chain's key: in Vault KV when the config has Vault, else in a 0600 file.

The key never enters the database (that is the point of it), the logs, or Slack. It is 32 random
bytes, stored as hex under `key` in the Vault secret or as the file's only line.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.private_files import PRIVATE, create_private
from playbooks.vault import Vault, VaultError, VaultSettings

KEY_BYTES = 32


class AuditKeyError(Exception):
    """The key cannot be had; the message says where it was looked for."""


def key_file_next_to(database: Path) -> Path:
    return database.with_name(database.name + ".audit-key")


def read_key_file(path: Path) -> bytes | None:
    if not path.exists():
        return None
    path.chmod(PRIVATE)  # a key file copied in by hand may have come with a wider mode
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError as error:
        raise AuditKeyError(f"the audit key file {path} does not hold a hex key") from error
    if len(key) < 16:
        raise AuditKeyError(f"the audit key in {path} is too short (want {KEY_BYTES} bytes)")
    return key


def key_from_file(path: Path, *, create: bool) -> bytes | None:
    """The key in `path`; with `create`, a new one is made first if there is none."""
    if create:
        create_private(path, secrets.token_hex(KEY_BYTES) + "\n")
    return read_key_file(path)


async def _vault_key(vault: Vault, path: str, *, create: bool) -> bytes | None:
    version = await vault.version(path)
    if version == 0 and create:
        # Check-and-set: when another kubegate wrote it first, its key is read below.
        with contextlib.suppress(VaultError):
            await vault.write(path, {"key": secrets.token_hex(KEY_BYTES)}, cas=0)
        version = await vault.version(path)
    if version == 0:
        return None
    secret, _ = await vault.read(path)
    try:
        return bytes.fromhex(str(secret["key"]))
    except (KeyError, ValueError) as error:
        raise AuditKeyError(f"the Vault secret {path} has no hex `key`") from error


def key_from_vault(settings: VaultSettings, path: str, *, create: bool) -> bytes | None:
    """Read (or create) the key in Vault KV v2, from synchronous start-up code.

    The Vault client is async; start-up is not, and may run inside an event loop already, so the
    call gets a loop of its own in a worker thread.
    """
    with ThreadPoolExecutor(max_workers=1) as worker:
        future = worker.submit(asyncio.run, _vault_key(Vault(settings), path, create=create))
        try:
            return future.result()
        except VaultError as error:
            raise AuditKeyError(f"cannot get the audit key from Vault ({path}): {error}") from error
