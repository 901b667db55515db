"""`backup etcd`'s steps on the fake tier: the snapshot is verified, copied off the host with
its sha256 and removed from it; a copy that does not match is thrown away; only N are kept."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from playbooks.etcd_backup import BackupSnapshot, SavedSnapshot, decide_backup, etcdctl
from tests.fakes import FakeKube, FakeShell, Reply, Run, cluster_of, node

SNAPSHOT = b"etcd snapshot bytes"
SHA256 = hashlib.sha256(SNAPSHOT).hexdigest()
PRIVATE_DIR = "/tmp/kubegate-backup.abcdefgh"


async def saved_on_the_node(
    tmp_path: Path, *, keep: int = 7, node_sha: str = SHA256
) -> tuple[Run, FakeShell]:
    """The backup run with its snapshot taken; the node answers status and sha256sum."""
    kube, shell = FakeKube(node("cp-1", roles=("control-plane",))), FakeShell()
    handle = cluster_of(kube, shell)
    handle.backup_dir, handle.backup_keep = tmp_path, keep
    seen = BackupSnapshot(handle.name, handle.inventory, await kube.list_nodes(), tmp_path, keep)
    run = Run(decide_backup(seen), handle)
    save = run.steps[0]
    saved = await save.run(run.ctx)
    run.ctx.results[save.name] = saved
    run.done.append((save, saved))
    remote = saved.outcome(SavedSnapshot).remote
    # Root's snapshot is handed to the login user as a private copy in a mktemp directory.
    shell.reply(
        ["mktemp", "-d", "-t", "kubegate-backup.XXXXXXXX"], Reply(stdout=PRIVATE_DIR + "\n")
    )
    shell.files[("cp-1", f"{PRIVATE_DIR}/{Path(remote).name}")] = SNAPSHOT
    status = {"revision": 42, "totalKey": 7, "totalSize": len(SNAPSHOT)}
    shell.reply(
        etcdctl(handle, "snapshot", "status", remote, "-w", "json"),
        Reply(stdout=json.dumps(status)),
    )
    shell.reply(["sha256sum", remote], Reply(stdout=f"{node_sha}  {remote}\n"))
    return run, shell


async def test_a_verified_snapshot_is_copied_off_the_host_with_its_sha256_and_removed_there(
    tmp_path: Path,
) -> None:
    run, shell = await saved_on_the_node(tmp_path)
    result = await run.all()
    assert result.ok, result.summary
    [copy] = tmp_path.glob("etcd-*.db")
    assert copy.read_bytes() == SNAPSHOT
    assert copy.with_suffix(".db.sha256").read_text() == f"{SHA256}  {copy.name}\n"
    remote = run.ctx.results["snapshot"].outcome(SavedSnapshot).remote
    assert ("rm", "-f", remote) in shell.ran("cp-1")
    copy_as_root = ("install", "-m", "0600", "-o", "root", remote, f"{PRIVATE_DIR}/{copy.name}")
    assert copy_as_root in shell.ran("cp-1")
    assert ("rm", "-rf", "--", PRIVATE_DIR) in shell.ran("cp-1")


async def test_a_copy_whose_sha256_differs_from_the_nodes_is_thrown_away(tmp_path: Path) -> None:
    run, _ = await saved_on_the_node(tmp_path, node_sha="0" * 64)
    result = await run.all()
    assert not result.ok and "differs from the node's 000000000000" in result.summary
    assert list(tmp_path.iterdir()) == []


async def test_only_the_newest_copies_are_kept(tmp_path: Path) -> None:
    for age, name in enumerate(["etcd-old-1.db", "etcd-old-2.db"], start=1):
        older = tmp_path / name
        older.write_bytes(b"old")
        older.with_suffix(".db.sha256").write_text("x")
        os.utime(older, (0, 1_000_000 - age))
    run, _ = await saved_on_the_node(tmp_path, keep=2)
    result = await run.all()
    assert result.ok and "removed 1 older" in result.summary
    kept = sorted(p.name for p in tmp_path.glob("etcd-*.db"))
    assert len(kept) == 2 and "etcd-old-1.db" in kept and "etcd-old-2.db" not in kept
    assert not (tmp_path / "etcd-old-2.db.sha256").exists()
