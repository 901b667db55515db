"""`/kube backup etcd` on kubeadm control planes as they are: no etcdctl on the host, etcd in its
static pod, a root-owned snapshot, and the copy kept encrypted with a key from Vault; an aborted
backup leaves no snapshot behind."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from testbed.fleet.etcd_image import distro_bin
from testbed.up import Testbed
from tests.conftest import running_testbed
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import audit_of, click, kubegate_cli, request, wait_reply, wait_text
from tests.e2e.test_upgrade_ha import node_root
from tests.integration.fleet_helpers import openssh


@pytest.fixture
async def ha_kubegate(tmp_path: Path) -> AsyncIterator[tuple[Testbed, Served]]:
    async with (
        running_testbed(tmp_path / "testbed", control_planes=3, workers=1) as testbed,
        serving(testbed, tmp_path, {}) as served,
    ):
        yield testbed, served


def etcdutl_status(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(distro_bin() / "etcdutl"), "snapshot", "status", str(path), "-w", "json"],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def decrypt(testbed: Testbed, sealed: Path, out: Path) -> tuple[int, str]:
    """`kubegate backup decrypt`, run while the in-process Vault keeps answering."""
    kubegate = str(Path(sys.executable).parent / "kubegate")
    process = await asyncio.create_subprocess_exec(
        *[kubegate, "backup", "decrypt", str(sealed), "--out", str(out)],
        env={"KUBEGATE_CONFIG": str(testbed.config_path), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_backup_on_three_kubeadm_control_planes_is_sealed_until_decrypted_and_audited(
    ha_kubegate: tuple[Testbed, Served], tmp_path: Path
) -> None:
    testbed, served = ha_kubegate
    assert testbed.world is not None
    fleet = testbed.world.fleet
    root = await request(testbed, "U0ALICE", "backup etcd")
    assert "in the etcd container" in root.shown
    await click(testbed, "U0BOB", root, "Approve")
    done = await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    assert "AES-256-GCM" in done.shown

    # No etcdctl on the host: it ran in the etcd container, through crictl.
    calls = [c.argv for c in fleet.calls("cp-1")]
    assert not any(argv[0] == "etcdctl" for argv in calls)
    assert any(argv[:2] == ["crictl", "exec"] and "etcdutl" in argv for argv in calls)

    [sealed] = (testbed.directory / "backups" / "testbed").glob("etcd-*.db.enc")
    assert sealed.stat().st_mode & 0o777 == 0o600
    assert etcdutl_status(sealed).returncode != 0  # not a snapshot until decrypted

    plain = tmp_path / "restored.db"
    code, errors = await decrypt(testbed, sealed, plain)
    assert code == 0, errors
    assert plain.stat().st_mode & 0o777 == 0o600
    status = etcdutl_status(plain)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["totalKey"] >= 3

    exported = kubegate_cli(served.db, "audit", "export").stdout
    assert sha256_of(plain) in exported
    finishes = audit_of(served.db).events(action="step.finish")
    sealed_with = [
        e["details"]["result"] for e in finishes if "key_version" in e["details"]["result"]
    ]
    assert sealed_with and sealed_with[0]["key_version"] >= 1
    # The audit names the key's Vault version, never the key.
    key = testbed.world.vault.kv.read("kubegate/backup-encryption", None)["data"]["aes256_gcm_key"]
    assert key not in exported and key not in json.dumps(testbed.slack.transcript_json())


async def test_an_aborted_backup_leaves_no_snapshot_on_the_control_plane(
    ha_kubegate: tuple[Testbed, Served],
) -> None:
    testbed, _ = ha_kubegate
    listed = await openssh(testbed.fleet, "cp-1", "sudo -n crictl ps --name '^etcd$' -q")
    container = listed.stdout.strip()
    testbed.fleet.fail("cp-1", f"crictl exec {container} etcdutl snapshot status", stderr="EIO")
    root = await request(testbed, "U0ALICE", "backup etcd")
    await click(testbed, "U0BOB", root, "Approve")
    halted = await wait_reply(testbed, root, "halted", timeout=60)
    data_dir = node_root(testbed, "cp-1") / "var/lib/etcd"
    [taken] = data_dir.glob("kubegate-etcd-*.db")  # etcdctl saved it as root, in etcd's volume

    await click(testbed, "U0BOB", halted, "Abort")
    cancelled = await wait_text(testbed, root.ts, "CANCELLED", timeout=60)
    assert f"removed the snapshot /var/lib/etcd/{taken.name} from cp-1" in cancelled.shown
    assert sorted(p.name for p in data_dir.glob("kubegate-etcd-*")) == []
    assert list((testbed.directory / "backups").rglob("*.partial")) == []
