"""Backups sealed at rest: only the Vault key opens them, and a changed, cut or reordered file
never opens into a snapshot."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from playbooks import backup_crypto
from playbooks.backup_crypto import (
    DEFAULT_KEY_PATH,
    KEY_FIELD,
    BackupCryptoError,
    backup_key,
    decrypt_file,
    encrypt_file,
    opening_key,
    read_header,
)
from playbooks.vault import VaultError

KEY = bytes(range(32))


def sealed_copy(tmp_path: Path, content: bytes) -> Path:
    plain, sealed = tmp_path / "plain.db", tmp_path / "sealed.db.enc"
    plain.write_bytes(content)
    encrypt_file(plain, sealed, KEY, key_path="kubegate/backup-encryption", key_version=3)
    return sealed


@pytest.mark.parametrize("size", [0, 10, 3 * 1024 + 5])
def test_a_sealed_backup_opens_to_the_same_bytes_with_the_key(
    tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backup_crypto, "CHUNK", 1024)  # several chunks for the larger file
    content = os.urandom(size)
    sealed = sealed_copy(tmp_path, content)
    assert sealed.stat().st_mode & 0o777 == 0o600
    out = tmp_path / "out.db"
    decrypt_file(sealed, out, KEY)
    assert out.read_bytes() == content and out.stat().st_mode & 0o777 == 0o600


def test_the_file_names_the_key_version_and_never_holds_the_key_or_the_plain_bytes(
    tmp_path: Path,
) -> None:
    content = b"/registry/secrets/default/db-password" * 10
    sealed = sealed_copy(tmp_path, content)
    header = read_header(sealed)
    assert header["key"] == "kubegate/backup-encryption" and header["key_version"] == 3
    data = sealed.read_bytes()
    assert KEY not in data and b"db-password" not in data


def test_another_key_opens_nothing_and_leaves_no_output(tmp_path: Path) -> None:
    sealed = sealed_copy(tmp_path, b"snapshot")
    out = tmp_path / "out.db"
    with pytest.raises(BackupCryptoError, match="v3"):
        decrypt_file(sealed, out, bytes(32))
    assert not out.exists()


def test_a_truncated_backup_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_crypto, "CHUNK", 1024)
    sealed = sealed_copy(tmp_path, os.urandom(4096))
    data = sealed.read_bytes()
    sealed.write_bytes(data[: len(data) - (1024 + 16)])  # the last chunk dropped
    with pytest.raises(BackupCryptoError):
        decrypt_file(sealed, tmp_path / "out.db", KEY)


def test_a_changed_byte_is_refused(tmp_path: Path) -> None:
    sealed = sealed_copy(tmp_path, b"snapshot bytes" * 100)
    data = bytearray(sealed.read_bytes())
    data[-20] ^= 1
    sealed.write_bytes(bytes(data))
    with pytest.raises(BackupCryptoError):
        decrypt_file(sealed, tmp_path / "out.db", KEY)


def test_a_file_that_is_no_backup_says_so(tmp_path: Path) -> None:
    plain = tmp_path / "etcd.db"
    plain.write_bytes(b"\x00" * 64)
    with pytest.raises(BackupCryptoError, match="not a kubegate backup"):
        read_header(plain)


class VersionedKeys:
    """Vault KV v2 as the backup key sees it: every version kept, the current one the last."""

    def __init__(self) -> None:
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.destroyed: set[int] = set()

    async def version(self, path: str) -> int:
        return len(self.versions.get(path, []))

    async def read(self, path: str, *, version: int | None = None) -> tuple[dict[str, Any], int]:
        number = version or len(self.versions[path])
        if number in self.destroyed:
            raise VaultError(f"Vault rejected the request while reading {path} v{number}")
        return self.versions[path][number - 1], number

    async def write(self, path: str, secret: dict[str, Any], *, cas: int | None) -> int:
        kept = self.versions.setdefault(path, [])
        assert cas is None or cas == len(kept)
        kept.append(secret)
        return len(kept)

    def rotate(self, path: str = DEFAULT_KEY_PATH) -> None:
        """What an operator's `vault kv put` of a new key does: a new version, the old kept."""
        fresh = base64.b64encode(os.urandom(32)).decode()
        self.versions[path].append({KEY_FIELD: fresh})


async def sealed_with_the_current_key(tmp_path: Path, vault: VersionedKeys) -> tuple[Path, bytes]:
    content = os.urandom(2048)
    plain, sealed = tmp_path / "plain.db", tmp_path / "sealed.db.enc"
    plain.write_bytes(content)
    key, version = await backup_key(vault)
    encrypt_file(plain, sealed, key, key_path=DEFAULT_KEY_PATH, key_version=version)
    return sealed, content


async def test_a_backup_sealed_before_the_key_was_rotated_still_opens(tmp_path: Path) -> None:
    vault = VersionedKeys()
    sealed, content = await sealed_with_the_current_key(tmp_path, vault)
    vault.rotate()
    _, current = await backup_key(vault)
    assert current == 2  # new backups are sealed with the rotated key
    header = read_header(sealed)
    assert header["key_version"] == 1
    out = tmp_path / "out.db"
    decrypt_file(sealed, out, await opening_key(vault, header))
    assert out.read_bytes() == content


async def test_a_backup_whose_key_version_is_gone_from_vault_names_that_version(
    tmp_path: Path,
) -> None:
    vault = VersionedKeys()
    sealed, _ = await sealed_with_the_current_key(tmp_path, vault)
    vault.rotate()
    vault.destroyed.add(1)
    with pytest.raises(BackupCryptoError, match=r"sealed with Vault kubegate/backup-encryption v1"):
        await opening_key(vault, read_header(sealed))
