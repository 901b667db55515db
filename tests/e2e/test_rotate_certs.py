"""`/kube certs` and `/kube rotate certs` over real SSH: kubeadm renews, the static pods restart
one by one, Vault keeps the public certificates with check-and-set, and no key leaks."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubectl,
    kubegate_cli,
    request,
    wait_ephemeral,
    wait_reply,
    wait_text,
)

DAY = 86400.0


def expire_soon(testbed: Testbed, node: str, certificate: str, *, days: float) -> None:
    """Set one certificate's expiry in the node's state, as if it were issued a year ago."""
    path = testbed.fleet.nodes[node].state_dir / "state.json"
    state = json.loads(path.read_text())
    state["certs"][certificate] = time.time() + days * DAY
    path.write_text(json.dumps(state))  # in place: the file keeps the fleet account as owner


async def rotate(testbed: Testbed) -> str:
    root = await request(testbed, "U0ALICE", "rotate certs")
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    return root.ts


async def test_certs_answers_privately_with_each_control_planes_table(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    expire_soon(testbed, "cp-1", "apiserver", days=10)
    await testbed.slack.user("U0CAROL").slash("/kube certs", channel=CHANNEL)
    answer = await wait_ephemeral(testbed, "U0CAROL", "Certificates of testbed")
    assert "cp-1" in answer.shown and "soonest: apiserver in 9d ⚠️" in answer.shown
    assert "front-proxy-ca" in answer.shown and "etcd-peer" in answer.shown
    assert testbed.slack.messages(CHANNEL) == []  # nothing said in the channel


async def test_rotate_certs_renews_restarts_static_pods_and_stores_in_vault_with_cas(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    assert testbed.world is not None
    expire_soon(testbed, "cp-1", "apiserver", days=10)
    root = await request(testbed, "U0ALICE", "rotate certs")
    assert "soonest apiserver" in root.shown and "kubeadm certs renew all" in root.shown
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    await wait_reply(testbed, root, "kube-scheduler")
    await wait_reply(testbed, root, "stored in Vault: cp-1 v1")

    calls = [" ".join(c.argv) for c in testbed.fleet.calls("cp-1")]
    renewed = calls.index("kubeadm certs renew all")
    moves = [i for i, call in enumerate(calls) if call.startswith("mv ")]
    assert len(moves) == 8 and moves[0] > renewed
    assert "kube-apiserver.yaml" in calls[moves[0]] and "etcd.yaml" in calls[moves[-1]]
    ready = await asyncio.to_thread(
        kubectl,
        testbed,
        "get",
        "pod",
        "-n",
        "kube-system",
        "kube-apiserver-cp-1",
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
    )
    assert ready == "True"

    await testbed.slack.user("U0CAROL").slash("/kube certs", channel=CHANNEL)
    answer = await wait_ephemeral(testbed, "U0CAROL", "Certificates of testbed")
    assert "⚠️" not in answer.shown.split("\n", 1)[1] and "364d" in answer.shown

    stored = testbed.world.vault.kv.read("kubegate/pki/testbed/cp-1", None)
    assert stored["metadata"]["version"] == 1
    assert "BEGIN CERTIFICATE" in stored["data"]["apiserver.crt"]
    assert all("PRIVATE KEY" not in value for value in stored["data"].values())

    await rotate(testbed)
    assert (
        testbed.world.vault.kv.read("kubegate/pki/testbed/cp-1", None)["metadata"]["version"] == 2
    )
    verified = kubegate_cli(kubegate_on_machines.db, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_rotate_certs_on_a_worker_is_refused_in_the_requesters_words(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    await testbed.slack.user("U0ALICE").slash("/kube rotate certs --node worker-1", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "worker-1 is not a control-plane node")


async def test_no_private_key_or_kubeconfig_token_appears_anywhere(
    full_testbed: Testbed, kubegate_on_machines: Served, caplog: pytest.LogCaptureFixture
) -> None:
    testbed = full_testbed
    caplog.set_level(logging.DEBUG)
    await rotate(testbed)
    pki = testbed.fleet.nodes["cp-1"].state_dir / "root/etc/kubernetes/pki"
    key_lines = [
        line
        for key in [*pki.glob("*.key"), *pki.glob("etcd/*.key")]
        for line in key.read_text().splitlines()
        if "PRIVATE KEY" not in line
    ]
    assert key_lines
    token = testbed.apiserver.token
    places = {
        "slack": json.dumps(testbed.slack.transcript_json()),
        "logs": caplog.text,
        "audit": kubegate_cli(kubegate_on_machines.db, "audit", "export").stdout,
        "database": "".join(
            path.read_bytes().decode("latin-1")
            for path in Path(kubegate_on_machines.db).parent.glob(
                kubegate_on_machines.db.name + "*"
            )
        ),
    }
    for where, text in places.items():
        assert not [line for line in key_lines if line in text], (
            f"a private key leaked into {where}"
        )
        assert token not in text, f"the admin kubeconfig's token leaked into {where}"
