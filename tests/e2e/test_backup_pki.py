"""`/kube backup pki`: the cluster's CAs and service-account keys go to Vault KV v2 (a new version
each run, check-and-set), and not one byte of a key reaches Slack, the logs, the audit export or
kubegate's database."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
import yaml

from testbed.up import Testbed
from testbed.vault.kv import KvError
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubegate_cli,
    request,
    wait_ephemeral,
    wait_text,
)

PATH = "kubegate/pki/testbed/cluster-pki"
KEYS = ("ca.key", "front-proxy-ca.key", "etcd/ca.key", "sa.key")
PUBLIC = ("ca.crt", "front-proxy-ca.crt", "etcd/ca.crt", "sa.pub")


async def backed_up(testbed: Testbed) -> str:
    root = await request(testbed, "U0ALICE", "backup pki")
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    return root.ts


def key_markers(pki: Path) -> list[str]:
    """Every line of every private key's body: any one of them found somewhere is a leak."""
    return [
        line
        for name in KEYS
        for line in (pki / name).read_text().splitlines()
        if "PRIVATE KEY" not in line and len(line) > 16
    ]


async def test_backup_pki_keeps_the_cluster_cas_in_vault_at_a_new_version_each_run(
    full_testbed: Testbed, kubegate_on_machines: Served, caplog: pytest.LogCaptureFixture
) -> None:
    testbed = full_testbed
    assert testbed.world is not None
    caplog.set_level(logging.DEBUG)
    pki = testbed.fleet.nodes["cp-1"].state_dir / "root/etc/kubernetes/pki"

    first = await backed_up(testbed)
    stored = testbed.world.vault.kv.read(PATH, None)
    assert stored["metadata"]["version"] == 1
    for name in (*KEYS, *PUBLIC):
        assert stored["data"][name] == (pki / name).read_text(), name
    await backed_up(testbed)
    assert testbed.world.vault.kv.read(PATH, None)["metadata"]["version"] == 2

    thread = "\n".join(m.shown for m in testbed.slack.replies(CHANNEL, first))
    assert f"in Vault at {PATH}, version 1" in thread
    audit = kubegate_cli(kubegate_on_machines.db, "audit", "export").stdout
    assert f"in Vault at {PATH}, version 1" in audit  # the step's audited summary
    ca_digest = hashlib.sha256((pki / "ca.crt").read_bytes()).hexdigest()
    assert ca_digest in audit  # certificates by digest; keys not even that
    markers = key_markers(pki)
    assert len(markers) > 10
    places = {
        "slack": json.dumps(testbed.slack.transcript_json()),
        "logs": caplog.text,
        "audit": audit,
        "database": "".join(
            path.read_bytes().decode("latin-1")
            for path in kubegate_on_machines.db.parent.glob(kubegate_on_machines.db.name + "*")
        ),
    }
    for where, text in places.items():
        assert not [line for line in markers if line in text], f"key bytes leaked into {where}"


async def test_backup_pki_is_refused_for_a_cluster_that_did_not_opt_in(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    testbed = full_testbed
    config = yaml.safe_load(testbed.config_path.read_text())
    config["clusters"][0]["inventory"]["pki_in_vault"] = False
    async with serving(testbed, tmp_path, {"clusters": config["clusters"]}):
        await testbed.slack.user("U0ALICE").slash("/kube backup pki", channel=CHANNEL)
        refusal = await wait_ephemeral(testbed, "U0ALICE", "does not keep its PKI in Vault")
    assert "pki_in_vault: true" in refusal.shown
    assert testbed.world is not None
    with pytest.raises(KvError):  # nothing was written
        testbed.world.vault.kv.read(PATH, None)
