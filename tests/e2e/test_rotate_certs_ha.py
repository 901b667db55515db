"""`/kube rotate certs` as an HA cluster's operator needs it: one control plane at a time, the API
up through the load balancer all along, etcd never without quorum, every certificate on disk
renewed (openssl says so), refused before anything changes when an etcd member is down; and on
one control plane, kubegate's own kubeconfig is the renewed admin.conf's."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from testbed.up import Testbed
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import CHANNEL, click, request, wait_ephemeral, wait_text

CERTIFICATE_FILES = ("*.crt", "etcd/*.crt")
KUBECONFIGS = ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf")


@pytest.fixture
async def kubegate_on_ha(ha_testbed: Testbed, tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(ha_testbed, tmp_path, {}) as served:
        yield served


def not_after(pem: bytes) -> datetime:
    shown = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate"], input=pem, capture_output=True, check=True
    ).stdout.decode()
    return datetime.strptime(shown.strip().removeprefix("notAfter="), "%b %d %H:%M:%S %Y %Z")


def embedded_certificate(kubeconfig: Path) -> bytes:
    config = yaml.safe_load(kubeconfig.read_text())
    return base64.b64decode(config["users"][0]["user"]["client-certificate-data"])


def control_plane_certificates(testbed: Testbed, node: str) -> dict[str, datetime]:
    """Every certificate of a control plane, by its file, with its notAfter as openssl reads it:
    the PKI's leaves and CAs, and the client certificates inside the kubeconfigs."""
    root = testbed.fleet.nodes[node].state_dir / "root/etc/kubernetes"
    found = {
        str(path.relative_to(root)): not_after(path.read_bytes())
        for pattern in CERTIFICATE_FILES
        for path in (root / "pki").glob(pattern)
    }
    for name in KUBECONFIGS:
        found[name] = not_after(embedded_certificate(root / name))
    return found


async def kubectl_answers(testbed: Testbed) -> bool:
    """`kubectl get nodes` with the testbed's kubeconfig (on HA, through the load balancer)."""
    process = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(testbed.kubeconfig),
        "--request-timeout",
        "5s",
        "get",
        "nodes",
        "-o",
        "name",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    return process.returncode == 0 and b"node/cp-1" in out


async def approved_rotation(testbed: Testbed) -> str:
    root = await request(testbed, "U0ALICE", "rotate certs")
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    return root.ts


async def test_rotation_on_three_control_planes_renews_everything_and_keeps_the_api_up(
    ha_testbed: Testbed, kubegate_on_ha: Served
) -> None:
    testbed = ha_testbed
    planes = ("cp-1", "cp-2", "cp-3")
    before = {node: control_plane_certificates(testbed, node) for node in planes}
    answers: list[bool] = []
    stop = asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            answers.append(await kubectl_answers(testbed))
            await asyncio.sleep(0.2)

    poller = asyncio.create_task(poll())
    try:
        ts = await approved_rotation(testbed)
        await wait_text(testbed, ts, "SUCCEEDED", timeout=240)
    finally:
        stop.set()
        await poller

    for node in planes:
        # Every certificate kubeadm renews is on disk before (kubeadm certs check-expiration).
        assert len(before[node]) == 14 and "pki/apiserver-etcd-client.crt" in before[node]
        after = control_plane_certificates(testbed, node)
        authorities = {"pki/ca.crt", "pki/front-proxy-ca.crt", "pki/etcd/ca.crt"}
        for name, then in before[node].items():
            if name not in authorities:  # kubeadm renews leaves; its CAs stay as they are
                assert after[name] > then, f"{name} on {node} was not renewed"
    stats = testbed.apiserver.stats()
    assert stats["max_apiservers_down"] <= 1
    assert stats["etcd_quorum_lost"] == 0
    assert len(answers) > 10 and all(answers), f"{answers.count(False)} kubectl calls failed"
    replies = "\n".join(m.shown for m in testbed.slack.replies(CHANNEL, ts))
    assert "cp-3: etcd-cp-3 Ready again" in replies  # the thread shows the output's tail
    assert "cp-3: kube-apiserver ready and etcd healthy" in replies


async def test_rotation_is_refused_before_anything_changes_when_an_etcd_member_is_down(
    ha_testbed: Testbed, kubegate_on_ha: Served
) -> None:
    testbed = ha_testbed
    fault = ["fault", "--dir", str(testbed.directory), "etcd-member-down", "cp-2"]
    down = await asyncio.create_subprocess_exec(sys.executable, "-m", "testbed", *fault)
    assert await down.wait() == 0
    before = {node: control_plane_certificates(testbed, node) for node in ("cp-1", "cp-3")}

    await testbed.slack.user("U0ALICE").slash("/kube rotate certs", channel=CHANNEL)
    refusal = await wait_ephemeral(testbed, "U0ALICE", "etcd is not healthy with every member up")

    assert "nothing was changed" in refusal.shown
    for node in ("cp-1", "cp-2", "cp-3"):
        calls = [" ".join(call.argv) for call in testbed.fleet.calls(node)]
        assert not [c for c in calls if c.startswith(("kubeadm certs renew", "mv "))], node
    for node, then in before.items():
        assert control_plane_certificates(testbed, node) == then
    assert not [m for m in testbed.slack.messages(CHANNEL) if "job #" in m.shown]


async def test_rotation_on_one_control_plane_leaves_kubegate_with_the_renewed_admin_credentials(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    admin = testbed.fleet.nodes["cp-1"].state_dir / "root/etc/kubernetes/admin.conf"
    old = embedded_certificate(admin)

    root = await request(testbed, "U0ALICE", "rotate certs")
    assert "the only control plane: the Kubernetes API is briefly unavailable" in root.shown
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    ts = root.ts
    await wait_text(testbed, ts, "SUCCEEDED", timeout=120)

    renewed = embedded_certificate(admin)
    assert renewed != old and not_after(renewed) > not_after(old)
    assert embedded_certificate(testbed.kubeconfig) == renewed
    assert testbed.kubeconfig.stat().st_mode & 0o777 == 0o600
    ours = yaml.safe_load(testbed.kubeconfig.read_text())
    assert ours["clusters"][0]["cluster"]["server"] == testbed.apiserver.url  # still ours
    assert await kubectl_answers(testbed)
    replies = "\n".join(m.shown for m in testbed.slack.replies(CHANNEL, ts))
    assert "now holds cp-1's renewed admin credentials" in replies
    # The only API server went away with its restart (and etcd's): the thread says it was
    # waited for, and the job went on once it was back.
    assert "waiting for the API server to come back after the kube-apiserver restart" in replies
    assert "waiting for the API server to come back after the etcd restart" in replies
    assert testbed.apiserver.stats()["max_apiservers_down"] == 1
