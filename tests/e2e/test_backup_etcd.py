"""`/kube backup etcd` over real SSH to a real etcd; pinned host keys; secrets kept out."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
import yaml

from testbed.up import Testbed
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import (
    CHANNEL,
    audit_of,
    click,
    kubegate_cli,
    request,
    wait_ephemeral,
    wait_reply,
    wait_text,
)


async def test_backup_etcd_saves_a_verified_snapshot_off_the_host_with_its_sha256_audited(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    root = await request(testbed, "U0ALICE", "backup etcd")
    assert "etcdctl snapshot save on cp-1" in root.shown
    await click(testbed, "U0BOB", root, "Approve")
    done = await wait_text(testbed, root.ts, "SUCCEEDED", timeout=30)
    assert "revision" in done.shown and "keys" in done.shown

    sealed = list((testbed.directory / "backups" / "testbed").glob("etcd-*.db.enc"))
    assert len(sealed) == 1
    sha256 = sealed[0].with_name(sealed[0].name.replace(".db.enc", ".db.sha256")).read_text()
    finishes = [e for e in audit_of(kubegate_on_machines.db).events(action="step.finish")]
    assert any(e["details"]["result"].get("sha256") == sha256.split()[0] for e in finishes)
    saves = [c.argv for c in testbed.fleet.calls("cp-1") if "snapshot" in c.argv]
    assert any("save" in argv for argv in saves) and any("status" in argv for argv in saves)


async def test_an_unpinned_host_key_fails_the_step_naming_node_and_fingerprint_and_runs_nothing(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    cp1 = testbed.fleet.nodes["cp-1"]
    known_hosts = testbed.fleet.known_hosts_path
    # Pin another node's key for cp-1's address: as if cp-1 had been replaced by an impostor.
    impostor = testbed.fleet.nodes["worker-1"].host_public_key
    lines = [
        line
        for line in known_hosts.read_text().splitlines()
        if f"[{cp1.address}]:{cp1.port}" not in line
    ]
    known_hosts.write_text("\n".join([*lines, f"[{cp1.address}]:{cp1.port} {impostor}"]) + "\n")
    calls_before = len(testbed.fleet.calls("cp-1"))

    root = await request(testbed, "U0ALICE", "backup etcd")
    await click(testbed, "U0BOB", root, "Approve")
    halted = await wait_reply(testbed, root, "halted", timeout=20)
    assert "host key of cp-1" in halted.shown and "CHANGED" in halted.shown
    assert cp1.host_key_fingerprint in halted.shown
    assert len(testbed.fleet.calls("cp-1")) == calls_before


async def test_a_killed_sshd_fails_the_step_and_kubegate_keeps_answering(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    testbed.fleet.hang("cp-1", "crictl exec")  # etcdctl in the etcd container
    root = await request(testbed, "U0ALICE", "backup etcd")
    await click(testbed, "U0BOB", root, "Approve")

    def hanging() -> bool:
        return any("etcdctl" in c.argv for c in testbed.fleet.calls("cp-1"))

    async with asyncio.timeout(20):
        while not hanging():
            await asyncio.sleep(0.05)
    await testbed.fleet.kill_sshd("cp-1")
    halted = await wait_reply(testbed, root, "halted", timeout=20)
    assert "cp-1" in halted.shown and "connection" in halted.shown
    await wait_text(testbed, root.ts, "FAILED")

    await testbed.slack.user("U0CAROL").slash("/kube nodes", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0CAROL", "worker-3")


async def test_the_ssh_key_and_vault_token_appear_nowhere(
    full_testbed: Testbed, kubegate_on_machines: Served, caplog: pytest.LogCaptureFixture
) -> None:
    testbed = full_testbed
    caplog.set_level(logging.DEBUG)
    private_key = testbed.fleet.client_key_path.read_text()
    key_body = private_key.splitlines()[1]  # a line of the key itself
    vault_token = testbed.world.vault.root_token if testbed.world else ""
    assert len(vault_token) > 8

    root = await request(testbed, "U0ALICE", "backup etcd")
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=30)
    await testbed.slack.user("U0ALICE").slash("/kube audit", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "Audit")

    places = {
        "slack": json.dumps(testbed.slack.transcript_json()),
        "logs": caplog.text,
        "audit": kubegate_cli(kubegate_on_machines.db, "audit", "export").stdout,
        "database": "".join(  # the main file and its write-ahead log
            path.read_bytes().decode("latin-1")
            for path in kubegate_on_machines.db.parent.glob(kubegate_on_machines.db.name + "*")
        ),
    }
    for where, text in places.items():
        assert key_body not in text, f"the SSH private key leaked into {where}"
        assert vault_token not in text, f"the Vault token leaked into {where}"


def remote_commands_alive(needle: str) -> list[str]:
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in text and "pytest" not in text:
            alive.append(text)
    return alive


async def test_cancelling_a_running_backup_ends_the_remote_command(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    testbed.fleet.hang("cp-1", "crictl exec")  # etcdctl in the etcd container
    root = await request(testbed, "U0ALICE", "backup etcd")
    await click(testbed, "U0BOB", root, "Approve")
    async with asyncio.timeout(20):
        while not remote_commands_alive("job1-"):
            await asyncio.sleep(0.05)
    await testbed.slack.user("U0ALICE").slash("/kube cancel 1", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "will stop")
    await wait_text(testbed, root.ts, "CANCELLED", timeout=20)
    async with asyncio.timeout(10):
        while remote_commands_alive("job1-"):
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("auth", ["token", "approle"])
async def test_keys_from_vault_and_a_vault_signed_certificate_log_in_to_the_nodes(
    full_testbed: Testbed, tmp_path: Path, auth: str
) -> None:
    testbed = full_testbed
    assert testbed.world is not None
    vault = testbed.world.vault
    vault.kv.write(
        "kubegate/ssh",
        {
            "private_key": testbed.fleet.client_key_path.read_text(),
            "known_hosts": testbed.fleet.known_hosts_path.read_text(),
        },
        None,
    )
    config = yaml.safe_load(testbed.config_path.read_text())
    ssh = config["clusters"][0]["inventory"]["ssh"]
    for key in ("private_key", "known_hosts"):
        del ssh[key]
    ssh.update(
        private_key_vault="kubegate/ssh", known_hosts_vault="kubegate/ssh", sign_with_vault=True
    )
    if auth == "approle":
        config["vault"] = {
            "url": vault.url,
            "auth": "approle",
            "role_id": vault.approle_role_id,
            "secret_id": vault.approle_secret_id,
        }
    # Only a certificate from Vault's SSH CA can log in now: the plain key is no longer authorized.
    (testbed.fleet.public_dir / "authorized_keys").write_text("")
    async with serving(testbed, tmp_path, config) as served:
        root = await request(testbed, "U0ALICE", "backup etcd")
        await click(testbed, "U0BOB", root, "Approve")
        await wait_text(testbed, root.ts, "SUCCEEDED", timeout=30)
        database = served.db.read_bytes().decode("latin-1")
    assert testbed.fleet.client_key_path.read_text().splitlines()[1] not in database


async def test_a_sealed_vault_fails_the_step_that_needs_it_and_kubegate_keeps_serving(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    testbed = full_testbed
    assert testbed.world is not None
    config = yaml.safe_load(testbed.config_path.read_text())
    config["clusters"][0]["inventory"]["ssh"]["sign_with_vault"] = True
    testbed.world.vault.sealed = True
    async with serving(testbed, tmp_path, config):
        root = await request(testbed, "U0ALICE", "backup etcd")
        await click(testbed, "U0BOB", root, "Approve")
        halted = await wait_reply(testbed, root, "halted", timeout=30)
        assert "Vault is sealed" in halted.shown and "step 1" in halted.shown
        await testbed.slack.user("U0CAROL").slash("/kube nodes", channel=CHANNEL)
        await wait_ephemeral(testbed, "U0CAROL", "worker-3")
        testbed.world.vault.sealed = False
        await click(testbed, "U0ALICE", halted, "Retry step")
        await wait_text(testbed, root.ts, "SUCCEEDED", timeout=30)
