"""`/kube restore etcd <backup>` on a kubeadm cluster: the disaster-recovery runbook as one job,
on three control planes and on one, and its refusal while a member is down."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import hvac
import pytest

from testbed.slack.transcript import Message
from testbed.up import Testbed
from tests.conftest import running_testbed
from tests.e2e.conftest import serving
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubectl,
    root_messages,
    wait_ephemeral,
    wait_reply,
    wait_text,
)
from tests.e2e.test_etcd_backup_kubeadm import decrypt
from tests.e2e.test_upgrade_ha import node_root
from tests.integration.fleet_helpers import openssh

RESTORE_STEPS = 7
BACKUP_NAME = re.compile(r"etcd-testbed-job\d+-\d{8}T\d{6}Z")


@pytest.fixture(params=[3, 1], ids=["3 control planes", "1 control plane"])
async def kubegate_on(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Testbed]:
    async with (
        running_testbed(tmp_path / "testbed", control_planes=request.param, workers=1) as testbed,
        serving(testbed, tmp_path, {}),
    ):
        yield testbed


async def ask(testbed: Testbed, user: str, text: str) -> Message:
    """Type a slash command; the job's root message (planning reads every control plane)."""
    before = len(root_messages(testbed))
    response = await testbed.slack.user(user).slash(f"/kube {text}", channel=CHANNEL)
    assert response.status == 200
    return await testbed.slack.wait_for(
        lambda: root_messages(testbed)[before] if len(root_messages(testbed)) > before else None,
        timeout=30,
    )


async def backed_up(testbed: Testbed) -> str:
    root = await ask(testbed, "U0ALICE", "backup etcd")
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    await testbed.slack.user("U0ALICE").slash("/kube backups", channel=CHANNEL)
    listing = await wait_ephemeral(testbed, "U0ALICE", "etcd backups of testbed")
    names = BACKUP_NAME.findall(listing.shown)
    assert len(names) == 1, listing.shown
    return names[0]


def rotate_backup_key(testbed: Testbed) -> int:
    """`vault kv put secret/kubegate/backup-encryption aes256_gcm_key=…`: a new key version."""
    assert testbed.world is not None
    vault = hvac.Client(url=testbed.world.vault.url, token=testbed.world.vault.root_token)
    fresh = base64.b64encode(os.urandom(32)).decode()
    written = vault.secrets.kv.v2.create_or_update_secret(
        path="kubegate/backup-encryption", secret={"aes256_gcm_key": fresh}, mount_point="secret"
    )
    return int(written["data"]["version"])


def sealed_file(testbed: Testbed, name: str) -> Path:
    return testbed.directory / "backups" / "testbed" / f"{name}.db.enc"


def etcd_of(testbed: Testbed):  # type: ignore[no-untyped-def]
    assert testbed.world is not None
    return testbed.world.etcd


async def test_restore_brings_back_the_keys_of_the_backup_and_only_those(
    kubegate_on: Testbed,
) -> None:
    testbed = kubegate_on
    etcd = etcd_of(testbed)
    await etcd.etcdctl("put", "/kubegate-e2e/before", "written before the backup")
    name = await backed_up(testbed)
    await etcd.etcdctl("put", "/kubegate-e2e/after", "written after the backup")
    # The operator rotates the backup key since: the backup names the version that sealed it.
    assert await asyncio.to_thread(rotate_backup_key, testbed) == 2
    code, errors = await decrypt(testbed, sealed_file(testbed, name), testbed.directory / "x.db")
    assert code == 0, errors

    root = await ask(testbed, "U0CAROL", f'restore etcd {name} --break-glass "INC-9 etcd lost"')
    done = await wait_text(testbed, root.ts, "SUCCEEDED", timeout=150)
    assert "every member at revision" in done.shown
    staged = [m.shown for m in testbed.slack.replies(CHANNEL, root.ts) if "staged on" in m.shown]
    assert staged and "Vault key v1" in staged[0]

    assert "written before" in await etcd.etcdctl("get", "/kubegate-e2e/before")
    assert await etcd.etcdctl("get", "/kubegate-e2e/after") == ""
    statuses = json.loads(await etcd.etcdctl("endpoint", "status", "-w", "json"))
    assert len(statuses) == len(etcd.members)
    assert len({s["Status"]["header"]["revision"] for s in statuses}) == 1
    assert len({s["Status"]["header"]["cluster_id"] for s in statuses}) == 1
    health = await etcd.healthy_members()
    assert all(health.values()), health
    # kubectl through the load balancer (blocking: off the loop the testbed serves on).
    assert "Ready" in await asyncio.to_thread(kubectl, testbed, "get", "nodes")

    replies = [m.shown for m in testbed.slack.replies(CHANNEL, root.ts)]
    for step in range(1, RESTORE_STEPS + 1):
        assert any(f"✅ Step {step}/{RESTORE_STEPS}" in shown for shown in replies), step
    assert any("etcdutl snapshot restore" in shown for shown in replies)


async def test_restore_refuses_explaining_quorum_while_a_member_is_down(tmp_path: Path) -> None:
    async with (
        running_testbed(tmp_path / "testbed", control_planes=3, workers=1) as testbed,
        serving(testbed, tmp_path, {}),
    ):
        name = await backed_up(testbed)
        assert testbed.faults is not None
        await testbed.faults.apply("etcd-member-down", ["cp-2"])
        calls_before = {n: len(testbed.fleet.calls(n)) for n in ("cp-1", "cp-2", "cp-3")}
        await testbed.slack.user("U0CAROL").slash(
            f'/kube restore etcd {name} --break-glass "INC-9"', channel=CHANNEL
        )
        refused = await wait_ephemeral(testbed, "U0CAROL", "quorum")
        assert "cp-2" in refused.shown and "2 of 3" in refused.shown
        assert "before anything changed" in refused.shown
        for node, before in calls_before.items():
            changed = [
                c.argv
                for c in testbed.fleet.calls(node)[before:]
                if c.argv[0] in ("mv", "install") or "restore" in c.argv
            ]
            assert changed == [], (node, changed)


async def test_aborting_a_halted_restore_brings_the_api_servers_back_and_leaves_etcd_as_it_was(
    tmp_path: Path,
) -> None:
    async with (
        running_testbed(tmp_path / "testbed", control_planes=3, workers=1) as testbed,
        serving(testbed, tmp_path, {}),
    ):
        etcd = etcd_of(testbed)
        name = await backed_up(testbed)
        await etcd.etcdctl("put", "/kubegate-e2e/after", "written after the backup")
        listed = await openssh(testbed.fleet, "cp-2", "sudo -n crictl ps --name '^etcd$' -q")
        container = listed.stdout.strip()
        testbed.fleet.fail(
            "cp-2", f"crictl exec {container} etcdutl snapshot restore", stderr="disk full"
        )

        root = await ask(testbed, "U0CAROL", f'restore etcd {name} --break-glass "INC-9"')
        halted = await wait_reply(testbed, root, "halted", timeout=120)
        assert "disk full" in halted.shown and "cp-2" in halted.shown
        replies = [m.shown for m in testbed.slack.replies(CHANNEL, root.ts)]
        assert any("✅ Step 2/7" in shown for shown in replies)  # every API server was down
        await click(testbed, "U0CAROL", halted, "Abort")
        cancelled = await wait_text(testbed, root.ts, "CANCELLED", timeout=120)
        assert "kube-apiserver.yaml back" in cancelled.shown or any(
            "kube-apiserver.yaml back" in m.shown for m in testbed.slack.replies(CHANNEL, root.ts)
        )

        assert "Ready" in await asyncio.to_thread(kubectl, testbed, "get", "nodes")
        assert "written after" in await etcd.etcdctl("get", "/kubegate-e2e/after")
        # The staged snapshots and cp-1's restored data hold every Secret: none stays behind.
        assert "removed the staged snapshots from cp-1, cp-2, cp-3" in cancelled.shown
        assert "removed the restored data not put in place on cp-1" in cancelled.shown
        for node in ("cp-1", "cp-2", "cp-3"):
            data = node_root(testbed, node) / "var/lib/etcd"
            assert sorted(p.name for p in data.glob("kubegate-restore-*")) == [], node
