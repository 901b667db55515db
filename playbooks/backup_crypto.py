"""Backups encrypted at rest: AES-256-GCM with a key kubegate keeps in Vault KV v2, created once
with check-and-set. A file names the key's Vault path and version, never the key.

Layout: MAGIC, a 4-byte length and a JSON header, then chunks of at most CHUNK bytes, each
sealed with nonce = prefix ‖ chunk counter and the header plus a last-chunk flag as associated
data, so reordered, dropped or truncated chunks fail to open (the STREAM construction,
Hoang, Reyhanitabar, Rogaway, Vizár, "Online Authenticated-Encryption and its Nonce-Reuse
Misuse-Resistance", 2015), and a snapshot of any size never sits whole in memory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import struct
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from playbooks.errors import OperationError
from playbooks.private_files import create_private
from playbooks.vault import VaultError

MAGIC = b"KUBEGATE-BACKUP\n"
CHUNK = 1 << 20
KEY_FIELD = "aes256_gcm_key"
DEFAULT_KEY_PATH = "kubegate/backup-encryption"


class KeyVault(Protocol):
    """What the key needs of Vault KV v2 (`playbooks.vault.Vault`)."""

    async def version(self, path: str) -> int: ...

    async def read(
        self, path: str, *, version: int | None = None
    ) -> tuple[dict[str, Any], int]: ...

    async def write(self, path: str, secret: dict[str, Any], *, cas: int | None) -> int: ...


class BackupCryptoError(OperationError):
    """A backup that cannot be opened: not ours, damaged, or sealed with another key."""


async def backup_key(vault: KeyVault, path: str = DEFAULT_KEY_PATH) -> tuple[bytes, int]:
    """The key new backups are sealed with: the current version at `path`, and that version.
    The first call creates it (cas=0), so two kubegates starting at once still end with one
    key. Rotating it is writing a new version there (`vault kv put`); older versions stay."""
    if await vault.version(path) == 0:
        fresh = base64.b64encode(secrets.token_bytes(32)).decode()
        # Another writer may win the check-and-set: then its key is the one read below.
        with contextlib.suppress(VaultError):
            await vault.write(path, {KEY_FIELD: fresh}, cas=0)
    data, version = await vault.read(path)
    return _key_bytes(data, path, version), version


async def opening_key(vault: KeyVault, header: dict[str, Any]) -> bytes:
    """The key a sealed backup was sealed with, by the Vault path and version its header names,
    so a backup taken before the key was rotated still opens after it."""
    path, version = str(header["key"]), int(header["key_version"])
    try:
        data, found = await vault.read(path, version=version)
    except VaultError as error:
        raise BackupCryptoError(
            f"the backup was sealed with Vault {path} v{version}, which Vault does not give "
            f"back ({error.message}); a destroyed or deleted key version cannot be recovered"
        ) from error
    return _key_bytes(data, path, found)


def _key_bytes(data: dict[str, Any], path: str, version: int) -> bytes:
    key = base64.b64decode(str(data.get(KEY_FIELD, "")))
    if len(key) != 32:
        raise BackupCryptoError(f"Vault {path} v{version} holds no 32-byte {KEY_FIELD}")
    return key


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _aad(header: bytes, last: bool) -> bytes:
    return header + (b"\x01" if last else b"\x00")


def encrypt_file(plain: Path, sealed: Path, key: bytes, *, key_path: str, key_version: int) -> None:
    """Write `sealed` (0600 from its first byte) from `plain`."""
    prefix = secrets.token_bytes(8)
    header = json.dumps(
        {
            "cipher": "AES-256-GCM",
            "key": key_path,
            "key_version": key_version,
            "nonce_prefix": prefix.hex(),
            "chunk": CHUNK,
        },
        sort_keys=True,
    ).encode()
    aead = AESGCM(key)
    with plain.open("rb") as source, os.fdopen(create_private(sealed), "wb") as out:
        out.write(MAGIC + struct.pack(">I", len(header)) + header)
        block, index = source.read(CHUNK), 0
        while True:
            following = source.read(CHUNK)
            last = not following
            out.write(aead.encrypt(_nonce(prefix, index), block, _aad(header, last)))
            if last:
                return
            block, index = following, index + 1


def _read_header(source: BinaryIO, path: Path) -> tuple[bytes, dict[str, Any]]:
    if source.read(len(MAGIC)) != MAGIC:
        raise BackupCryptoError(f"{path} is not a kubegate backup (no {MAGIC!r} header)")
    (length,) = struct.unpack(">I", source.read(4))
    header = source.read(length)
    return header, json.loads(header)


def read_header(path: Path) -> dict[str, Any]:
    """What a sealed backup says about itself: cipher, Vault key path and version."""
    with path.open("rb") as source:
        return _read_header(source, path)[1]


def decrypt_file(sealed: Path, plain: Path, key: bytes) -> None:
    """Write the snapshot back to `plain` (0600); a damaged file or wrong key leaves none."""
    try:
        with sealed.open("rb") as source, os.fdopen(create_private(plain), "wb") as out:
            header_bytes, header = _read_header(source, sealed)
            aead, prefix = AESGCM(key), bytes.fromhex(header["nonce_prefix"])
            size = int(header["chunk"]) + 16  # each chunk carries its 16-byte tag
            block, index = source.read(size), 0
            while True:
                following = source.read(size)
                last = not following
                try:
                    out.write(aead.decrypt(_nonce(prefix, index), block, _aad(header_bytes, last)))
                except InvalidTag as error:
                    raise BackupCryptoError(
                        f"{sealed} does not open with Vault {header['key']} "
                        f"v{header['key_version']}: the file is damaged or was sealed with "
                        "another key"
                    ) from error
                if last:
                    return
                block, index = following, index + 1
    except BaseException:
        plain.unlink(missing_ok=True)
        raise
