"""kubegate's backup directory: sealed etcd snapshots (`<name>.db.enc`, 0600) beside their
plain snapshot's sha256 (`<name>.db.sha256`); the N newest kept; and reading a root-owned
snapshot off a node with sudo."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path

from playbooks.base import RemoteShell
from playbooks.ssh import SshError, SshTarget

SEALED = ".db.enc"
SNAPSHOT_GLOB = "etcd-*" + SEALED


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_file(sealed: Path) -> Path:
    return sealed.with_name(sealed.name.removesuffix(SEALED) + ".db.sha256")


def backup_name(sealed: Path) -> str:
    """The name `/kube backups` shows and `/kube restore etcd` takes: the file's, unsuffixed."""
    return sealed.name.removesuffix(SEALED)


def prune(directory: Path, keep: int) -> list[str]:
    """Delete all but the `keep` newest backups (and their .sha256 files); the names removed."""
    sealed = sorted(directory.glob(SNAPSHOT_GLOB), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in sealed[keep:]:
        old.unlink()
        checksum_file(old).unlink(missing_ok=True)
        removed.append(backup_name(old))
    return removed


@dataclass(frozen=True)
class KeptBackup:
    name: str
    taken: float  # epoch seconds (the file's mtime)
    size: int
    sha256: str  # of the plain snapshot; "" when its .sha256 file is missing

    def age(self, now: float) -> float:
        return max(0.0, now - self.taken)


def kept_backups(directory: Path) -> list[KeptBackup]:
    """The backups in `directory`, newest first."""
    found = []
    for sealed in directory.glob(SNAPSHOT_GLOB) if directory.is_dir() else []:
        info = sealed.stat()
        checksum = checksum_file(sealed)
        sha256 = checksum.read_text().split()[0] if checksum.exists() else ""
        found.append(KeptBackup(backup_name(sealed), info.st_mtime, info.st_size, sha256))
    return sorted(found, key=lambda b: b.taken, reverse=True)


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    scaled, unit = float(size), "B"
    for unit in ("KiB", "MiB", "GiB"):  # noqa: B007 (the unit it stops at is the one shown)
        scaled /= 1024
        if scaled < 1024:
            break
    return f"{scaled:.1f} {unit}"


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def backups_table(backups: list[KeptBackup], *, now: float) -> list[str]:
    """`/kube backups` rows, newest first. Pure."""
    header = f"{'NAME':<44} {'TAKEN (UTC)':<17} {'SIZE':>10} {'SHA256':<12} AGE"
    rows = [
        f"{b.name:<44} {time.strftime('%Y-%m-%d %H:%M', time.gmtime(b.taken)):<17} "
        f"{_size(b.size):>10} {b.sha256[:12] or '(missing)':<12} {_age(b.age(now))}"
        for b in backups
    ]
    return [header, *rows]


def find_backup(directory: Path, name: str) -> Path | None:
    sealed = directory / (name + SEALED)
    return sealed if "/" not in name and sealed.is_file() else None


def stamp(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


async def fetch_root_file(ssh: RemoteShell, target: SshTarget, remote: str, local: Path) -> None:
    """Copy a root-owned 0600 file off the host: sudo hands the login user a private copy (0600,
    in a 0700 `mktemp -d` directory only it can enter), SFTP fetches it, and the copy is removed
    whatever happens. SFTP itself runs as the login user and could not read root's file."""
    login = replace(target, sudo=False)
    made = await ssh.run(login, ["mktemp", "-d", "-t", "kubegate-backup.XXXXXXXX"])
    if not made.ok:
        raise SshError(f"mktemp on {target.where} failed: {made.tail(3)}", node=target.node)
    private_dir = made.stdout.strip()
    copy = f"{private_dir}/{Path(remote).name}"
    try:
        handed = await ssh.run(
            target if target.user == "root" else replace(target, sudo=True),
            ["install", "-m", "0600", "-o", target.user, remote, copy],
        )
        if not handed.ok:
            raise SshError(
                f"cannot read {remote} as root on {target.where}: {handed.tail(3)}",
                node=target.node,
            )
        await ssh.sftp_get(login, copy, str(local))
    finally:
        await ssh.run(login, ["rm", "-rf", "--", private_dir])
