"""`/kube provision node <name> --role control-plane` through Slack on bare spare hosts of a
one-control-plane cluster behind a load balancer: the CA from Vault placed root's 0600, a real
etcd member added (2, then 3 members, healthy), the new API server serving behind the load
balancer, the Node a tainted control plane that `/kube status` shows; no CA key, certificate key
or token anywhere kubegate writes; refused while an etcd member is down."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from testbed.fleet.shims.uploadcerts import issued_keys_path
from testbed.slack import Message
from testbed.up import Testbed
from tests.conftest import running_testbed
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubectl,
    request,
    root_messages,
    wait_ephemeral,
    wait_reply,
)
from tests.e2e.test_provision import (
    assert_no_secret_in,
    join_tokens,
    node_object,
    places_to_scan,
    serving_logged,
    tokens_left_on,
)
from tests.e2e.test_restart import KubegateProcess, free_port, until

FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED", "halted")

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


@pytest.fixture
async def growing_testbed(tmp_path: Path) -> AsyncIterator[Testbed]:
    """One control plane behind a load balancer (its controlPlaneEndpoint), one worker and two
    bare spares; the operator has added the new control planes to kubegate's inventory."""
    async with running_testbed(
        tmp_path / "testbed", control_planes=1, workers=1, spare=2, load_balancer=True
    ) as testbed:
        config = yaml.safe_load(testbed.config_path.read_text())
        inventory = config["clusters"][0]["inventory"]
        # Each API server on its host's address, at a port no parallel testbed holds.
        for name, spare in (("cp-2", "spare-2"), ("cp-3", "spare-1")):
            access = dict(inventory["nodes"][spare])
            access["api_server"] = f"https://{access['address']}:{free_port(access['address'])}"
            inventory["nodes"][name] = access
        inventory["control_planes"] += ["cp-2", "cp-3"]
        testbed.config_path.write_text(yaml.safe_dump(config))
        yield testbed


@pytest.fixture
async def kubegate_logged(
    growing_testbed: Testbed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Served]:
    async with serving_logged(growing_testbed, tmp_path / "kubegate.db", caplog) as served:
        yield served


async def etcd_members(testbed: Testbed) -> dict[str, bool]:
    assert testbed.world is not None
    listed = json.loads(await testbed.world.etcd.etcdctl("member", "list", "-w", "json"))
    names = sorted(member.get("name", "") for member in listed["members"])
    health = await testbed.world.etcd.healthy_members()
    return {name: health.get(name, False) for name in names}


async def provision_control_plane(testbed: Testbed, name: str, address: str) -> None:
    root = await request(
        testbed, "U0ALICE", f"provision node {name} --address {address} --role control-plane"
    )
    assert "joins cluster testbed as a control plane" in root.shown
    assert "etcd is healthy with every member up now" in root.shown
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await wait_succeeded(testbed, root)


async def wait_succeeded(testbed: Testbed, root: Message, timeout: float = 90) -> None:
    """Wait for the job to end, whichever way: one that failed fails the test at once, with its
    thread, instead of outlasting the test's time limit."""

    def ended() -> Message | None:
        message = testbed.slack.message(CHANNEL, root.ts)
        done = message is not None and any(s in message.shown for s in FINAL_STATES)
        return message if done else None

    message = await testbed.slack.wait_for(ended, timeout=timeout)
    thread = "\n".join(reply.shown for reply in testbed.slack.replies(CHANNEL, root.ts))
    assert "SUCCEEDED" in message.shown, f"{message.shown}\n{thread}"


async def back_up_the_pki(testbed: Testbed) -> None:
    root = await request(testbed, "U0ALICE", "backup pki")
    await click(testbed, "U0BOB", root, "Approve")
    await wait_succeeded(testbed, root, timeout=60)


def secret_lines(testbed: Testbed) -> list[str]:
    """Lines of the cluster's CA keys (as cp-1 holds them) to look for where they must not be."""
    pki = testbed.fleet.nodes["cp-1"].state_dir / "root/etc/kubernetes/pki"
    lines = []
    for key in ("ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.key"):
        lines += [line for line in (pki / key).read_text().splitlines() if "-----" not in line]
    return lines


async def test_two_control_planes_join_from_the_vault_ca_with_real_etcd_members_behind_the_lb(
    growing_testbed: Testbed, kubegate_logged: Served, caplog: pytest.LogCaptureFixture
) -> None:
    testbed, served = growing_testbed, kubegate_logged
    assert testbed.load_balancer is not None and testbed.control_planes is not None
    await back_up_the_pki(testbed)

    await provision_control_plane(testbed, "cp-2", "127.0.10.102")
    assert await etcd_members(testbed) == {"cp-1": True, "cp-2": True}
    node = await node_object(testbed, "cp-2")
    assert "node-role.kubernetes.io/control-plane" in node["metadata"]["labels"]
    assert CONTROL_PLANE_TAINT in node["spec"]["taints"]
    assert testbed.apiserver.stats()["registered_untainted"] == 0
    pki = testbed.fleet.nodes["spare-2"].state_dir / "root/etc/kubernetes/pki"
    for name, mode in (("ca.key", 0o600), ("etcd/ca.key", 0o600), ("ca.crt", 0o644)):
        info = (pki / name).stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (mode, 0, 0), name
    assert await tokens_left_on(testbed, "cp-1") == []

    # The load balancer serves the new API server: with cp-1's down, the API still answers.
    await testbed.control_planes.hold_down("cp-1", "apiserver")
    try:
        assert "cp-2" in await asyncio.to_thread(kubectl, testbed, "get", "nodes")
    finally:
        await testbed.control_planes.release("cp-1", "apiserver")
    described = json.loads((testbed.directory / "testbed.json").read_text())
    assert [plane["name"] for plane in described["control_planes"]] == ["cp-1", "cp-2"]

    await provision_control_plane(testbed, "cp-3", "127.0.10.101")
    assert await etcd_members(testbed) == {"cp-1": True, "cp-2": True, "cp-3": True}
    assert testbed.load_balancer.description() == {"cp-1": True, "cp-2": True, "cp-3": True}
    assert testbed.control_planes.stats()["etcd_quorum_lost"] == 0

    await testbed.slack.user("U0ALICE").slash("/kube status", channel=CHANNEL)
    status = await wait_ephemeral(testbed, "U0ALICE", "Control planes")
    assert "cp-2 (Ready)" in status.shown and "cp-3 (Ready)" in status.shown

    places = places_to_scan(testbed, served, caplog.text)
    assert_no_secret_in(places, join_tokens(testbed))
    for where, text in places.items():
        for line in secret_lines(testbed):
            assert line not in text, f"a CA key leaked into {where}"


async def test_a_control_plane_is_refused_before_anything_runs_until_the_pki_is_in_vault(
    growing_testbed: Testbed, tmp_path: Path
) -> None:
    testbed = growing_testbed
    async with serving(testbed, tmp_path, {}):
        await testbed.slack.user("U0ALICE").slash(
            "/kube provision node cp-2 --address 127.0.10.102 --role control-plane",
            channel=CHANNEL,
        )
        refused = await wait_ephemeral(testbed, "U0ALICE", "run `/kube backup pki` first")
    assert "Vault has none at kubegate/pki/testbed/cluster-pki yet" in refused.shown
    assert "nothing was changed" in refused.shown
    assert root_messages(testbed) == []
    assert testbed.fleet.calls("spare-2") == [], "something ran on the new host"


@pytest.fixture
async def ha_testbed(tmp_path: Path) -> AsyncIterator[Testbed]:
    """Three control planes (one etcd member down still leaves the API a quorum) and a spare."""
    async with running_testbed(
        tmp_path / "testbed", control_planes=3, workers=1, spare=1
    ) as testbed:
        config = yaml.safe_load(testbed.config_path.read_text())
        inventory = config["clusters"][0]["inventory"]
        inventory["nodes"]["cp-4"] = dict(inventory["nodes"]["spare-1"])
        testbed.config_path.write_text(yaml.safe_dump(config))
        yield testbed


async def test_no_control_plane_is_added_while_an_etcd_member_is_down(
    ha_testbed: Testbed, tmp_path: Path
) -> None:
    testbed = ha_testbed
    assert testbed.control_planes is not None
    await testbed.control_planes.hold_down("cp-3", "etcd")
    async with serving(testbed, tmp_path, {}):
        await testbed.slack.user("U0ALICE").slash(
            "/kube provision node cp-4 --address 127.0.10.101 --role control-plane",
            channel=CHANNEL,
        )
        refused = await wait_ephemeral(
            testbed, "U0ALICE", "etcd must be healthy with every member up"
        )
        assert "nothing was changed" in refused.shown
    assert root_messages(testbed) == []
    assert testbed.fleet.calls("spare-1") == [], "something ran on the new host"


def certificate_keys(testbed: Testbed) -> list[str]:
    path = Path(issued_keys_path(str(testbed.fleet.public_dir / "cluster")))
    return path.read_text().split() if path.exists() else []


@pytest.fixture
async def kubegate_without_pki_in_vault(
    growing_testbed: Testbed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Served]:
    config = yaml.safe_load(growing_testbed.config_path.read_text())
    config["clusters"][0]["inventory"]["pki_in_vault"] = False
    growing_testbed.config_path.write_text(yaml.safe_dump(config))
    async with serving_logged(growing_testbed, tmp_path / "kubegate.db", caplog) as served:
        yield served


async def test_without_the_pki_in_vault_a_control_plane_joins_with_a_certificate_key_never_shown(
    growing_testbed: Testbed,
    kubegate_without_pki_in_vault: Served,
    caplog: pytest.LogCaptureFixture,
) -> None:
    testbed, served = growing_testbed, kubegate_without_pki_in_vault
    await provision_control_plane(testbed, "cp-2", "127.0.10.102")
    assert await etcd_members(testbed) == {"cp-1": True, "cp-2": True}
    uploads = [
        c.argv
        for c in testbed.fleet.calls("cp-1")
        if c.argv[:4] == ["kubeadm", "init", "phase", "upload-certs"]
    ]
    assert len(uploads) == 1
    gone = await asyncio.to_thread(
        kubectl, testbed, "-n", "kube-system", "get", "secrets", "-o", "name"
    )
    assert "kubeadm-certs" not in gone, "the Secret with the encrypted CA keys was left behind"
    keys = certificate_keys(testbed)
    assert keys, "the test found no certificate key to look for"
    places = places_to_scan(testbed, served, caplog.text)
    assert_no_secret_in(places, join_tokens(testbed))
    for where, text in places.items():
        for key in keys:
            assert key not in text, f"the certificate key leaked into {where}"
        for line in secret_lines(testbed):
            assert line not in text, f"a CA key leaked into {where}"


@pytest.fixture
async def kubegate_process(
    growing_testbed: Testbed, tmp_path: Path
) -> AsyncIterator[KubegateProcess]:
    served = KubegateProcess(growing_testbed, tmp_path / "kubegate.db", tmp_path / "kubegate.log")
    try:
        yield served
    finally:
        if served.process and served.process.poll() is None:
            served.kill(signal.SIGTERM)


async def test_kubegate_killed_after_a_control_planes_join_resumes_without_joining_again(
    growing_testbed: Testbed, kubegate_process: KubegateProcess
) -> None:
    testbed = growing_testbed
    await kubegate_process.start()
    await back_up_the_pki(testbed)
    # The join has happened; kubegate is deleting its token when it dies.
    testbed.fleet.hang("cp-1", "kubeadm token delete", times=1)
    asked = "provision node cp-2 --address 127.0.10.102 --role control-plane"
    root = await request(testbed, "U0ALICE", asked)
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await until(
        lambda: any(
            c.argv[:3] == ["kubeadm", "token", "delete"] for c in testbed.fleet.calls("cp-1")
        ),
        timeout=120,
    )
    kubegate_process.kill()
    testbed.fleet.clear_faults("cp-1")

    await kubegate_process.start()
    note = await wait_reply(testbed, root, "was interrupted", timeout=30)
    await click(testbed, "U0ALICE", note, "Resume")
    await wait_succeeded(testbed, root)
    await wait_reply(testbed, root, "cp-2 had already joined before the restart")
    joins = [c for c in testbed.fleet.calls("spare-2") if c.argv[:2] == ["kubeadm", "join"]]
    assert len(joins) == 1, "the join ran again"
    assert await etcd_members(testbed) == {"cp-1": True, "cp-2": True}
    assert await tokens_left_on(testbed, "cp-1") == []
