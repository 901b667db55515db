"""`backup etcd`'s steps on the fake tier: the snapshot is taken in the etcd container, verified
with etcdutl, read with sudo, sealed with the Vault key and removed from the node; a copy that
does not match is thrown away; only N are kept."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from playbooks.backup_crypto import decrypt_file, read_header
from playbooks.etcd_backup import BackupSnapshot, SavedSnapshot, decide_backup
from playbooks.etcd_tools import FIND_ETCD_CONTAINER, EtcdTools
from playbooks.vault import Vault, VaultSettings
from tests.fakes import FakeKube, FakeShell, Reply, Run, cluster_of, node

SNAPSHOT = b"etcd snapshot bytes"
SHA256 = hashlib.sha256(SNAPSHOT).hexdigest()
PRIVATE_DIR = "/tmp/kubegate-backup.abcdefgh"
CONTAINER = "0f3c9a1e2b4d" + "0" * 52


class KeyOnlyVault(Vault):
    """KV v2 in a dict, with check-and-set: all the backup key needs of Vault."""

    def __init__(self) -> None:
        super().__init__(VaultSettings(url="http://127.0.0.1:9", token="unused"))
        self.secrets: dict[str, list[dict[str, Any]]] = {}

    async def version(self, path: str) -> int:
        return len(self.secrets.get(path, []))

    async def read(self, path: str, *, version: int | None = None) -> tuple[dict[str, Any], int]:
        versions = self.secrets[path]
        number = version or len(versions)
        return versions[number - 1], number

    async def write(self, path: str, secret: dict[str, Any], *, cas: int | None) -> int:
        versions = self.secrets.setdefault(path, [])
        assert cas == len(versions)
        versions.append(secret)
        return len(versions)


async def saved_on_the_node(
    tmp_path: Path, *, keep: int = 7, node_sha: str = SHA256
) -> tuple[Run, FakeShell, KeyOnlyVault]:
    """The backup run with its snapshot taken; the node answers status and sha256sum."""
    kube, shell = FakeKube(node("cp-1", roles=("control-plane",))), FakeShell()
    shell.reply(FIND_ETCD_CONTAINER, Reply(stdout=CONTAINER + "\n"))
    handle = cluster_of(kube, shell)
    vault = KeyOnlyVault()
    handle.backup_dir, handle.backup_keep, handle.vault = tmp_path / "backups", keep, vault
    seen = BackupSnapshot(handle.name, handle.inventory, await kube.list_nodes(), tmp_path, keep)
    run = Run(decide_backup(seen), handle)
    save = run.steps[0]
    saved = await save.run(run.ctx)
    assert saved.ok, saved.summary
    run.ctx.results[save.name] = saved
    run.done.append((save, saved))
    remote = saved.outcome(SavedSnapshot).remote
    # Root's snapshot is handed to the login user as a private copy in a mktemp directory.
    shell.reply(
        ["mktemp", "-d", "-t", "kubegate-backup.XXXXXXXX"], Reply(stdout=PRIVATE_DIR + "\n")
    )
    shell.files[("cp-1", f"{PRIVATE_DIR}/{Path(remote).name}")] = SNAPSHOT
    status = {"revision": 42, "totalKey": 7, "totalSize": len(SNAPSHOT)}
    tools = EtcdTools(handle.inventory.etcd, CONTAINER)
    shell.reply(
        tools.etcdutl("snapshot", "status", remote, "-w", "json"),
        Reply(stdout=json.dumps(status)),
    )
    shell.reply(["sha256sum", remote], Reply(stdout=f"{node_sha}  {remote}\n"))
    return run, shell, vault


async def test_the_snapshot_is_taken_in_the_etcd_container_into_its_data_dir(
    tmp_path: Path,
) -> None:
    run, shell, _ = await saved_on_the_node(tmp_path)
    remote = run.ctx.results["snapshot"].outcome(SavedSnapshot).remote
    assert remote.startswith("/var/lib/etcd/kubegate-etcd-test-job")
    [save] = [argv for argv in shell.ran("cp-1") if "save" in argv]
    assert save[:4] == ("crictl", "exec", CONTAINER, "etcdctl")


async def test_a_verified_snapshot_is_sealed_off_the_host_with_its_sha256_and_removed_there(
    tmp_path: Path,
) -> None:
    run, shell, vault = await saved_on_the_node(tmp_path)
    result = await run.all()
    assert result.ok, result.summary
    directory = tmp_path / "backups"
    [sealed] = directory.glob("etcd-*.db.enc")
    assert SNAPSHOT not in sealed.read_bytes()
    assert read_header(sealed)["key_version"] == 1
    name = sealed.name.removesuffix(".db.enc")
    assert (directory / f"{name}.db.sha256").read_text() == f"{SHA256}  {name}.db\n"
    plain = tmp_path / "plain.db"
    key = base64.b64decode(vault.secrets["kubegate/backup-encryption"][0]["aes256_gcm_key"])
    decrypt_file(sealed, plain, key)
    assert plain.read_bytes() == SNAPSHOT
    assert sorted(p.name for p in directory.iterdir()) == sorted([sealed.name, f"{name}.db.sha256"])
    remote = run.ctx.results["snapshot"].outcome(SavedSnapshot).remote
    assert ("rm", "-f", remote) in shell.ran("cp-1")
    copy_as_root = (
        "install",
        "-m",
        "0600",
        "-o",
        "root",
        remote,
        f"{PRIVATE_DIR}/{Path(remote).name}",
    )
    assert copy_as_root in shell.ran("cp-1")
    assert ("rm", "-rf", "--", PRIVATE_DIR) in shell.ran("cp-1")


async def test_a_copy_whose_sha256_differs_from_the_nodes_is_thrown_away(tmp_path: Path) -> None:
    run, _, _ = await saved_on_the_node(tmp_path, node_sha="0" * 64)
    result = await run.all()
    assert not result.ok and "differs from the node's 000000000000" in result.summary
    assert list((tmp_path / "backups").iterdir()) == []


async def test_only_the_newest_copies_are_kept(tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    directory.mkdir(mode=0o700)
    for age, name in enumerate(["etcd-old-1", "etcd-old-2"], start=1):
        older = directory / f"{name}.db.enc"
        older.write_bytes(b"old")
        (directory / f"{name}.db.sha256").write_text("x")
        os.utime(older, (0, 1_000_000 - age))
    run, _, _ = await saved_on_the_node(tmp_path, keep=2)
    result = await run.all()
    assert result.ok and "removed 1 older" in result.summary
    kept = sorted(p.name for p in directory.glob("etcd-*.db.enc"))
    assert len(kept) == 2 and "etcd-old-1.db.enc" in kept and "etcd-old-2.db.enc" not in kept
    assert not (directory / "etcd-old-2.db.sha256").exists()
