"""The audit chain's key: in Vault KV when the config has Vault, else in a 0600 file.

The key never enters the database (that is the point of it), the logs, or Slack. It is 32 random
bytes, stored as hex under `key` in the Vault secret or as the file's only line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.chain import FALLBACK, KEYED
from bot.private_files import PRIVATE, create_private
from playbooks.vault import Vault, VaultError, VaultSettings

KEY_BYTES = 32

log = logging.getLogger("kubegate.audit")


class AuditKeyError(Exception):
    """The key cannot be had; the message says where it was looked for."""


def key_file_next_to(database: Path) -> Path:
    return database.with_name(database.name + ".audit-key")


def fallback_key_file_next_to(database: Path) -> Path:
    """The key used while Vault (which holds the real one) could not be reached at start-up."""
    return database.with_name(database.name + ".audit-key-fallback")


def read_key_file(path: Path) -> bytes | None:
    if not path.exists():
        return None
    if path.stat().st_mode & 0o077:
        # A key file copied in by hand may have come with a wider mode; a read-only mount (a
        # Kubernetes Secret) cannot be narrowed here: say so, without the key.
        try:
            path.chmod(PRIVATE)
        except OSError as error:
            log.warning("the audit key file %s is readable by others: %s", path, error.strerror)
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


def keys_beside(database: Path, *, create: bool) -> dict[str, bytes]:
    """The keys in the files beside the database, by the chain scheme each one signs."""
    keys = {KEYED: key_from_file(key_file_next_to(database), create=create)}
    keys[FALLBACK] = read_key_file(fallback_key_file_next_to(database))
    return {scheme: key for scheme, key in keys.items() if key is not None}


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


async def key_in_vault(settings: VaultSettings, path: str, *, create: bool) -> bytes | None:
    """The key in Vault KV v2 (made with check-and-set when missing and `create`)."""
    try:
        return await _vault_key(Vault(settings), path, create=create)
    except VaultError as error:
        raise AuditKeyError(f"cannot get the audit key from Vault ({path}): {error}") from error


def key_from_vault(settings: VaultSettings, path: str, *, create: bool) -> bytes | None:
    """`key_in_vault` for synchronous code that runs outside any event loop (the CLI).

    It gets a loop of its own in a worker thread; inside `serve`, the key is fetched on the
    service's loop instead (`audit_setup.prefetch_audit_key`).
    """
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, key_in_vault(settings, path, create=create)).result()
