"""kill -9 of `kubegate serve` while a remote command of a verb other than an upgrade still runs
on its node, then Resume at once: the command is waited for, never started a second one beside
it, and what it finished is kept (an etcd snapshot, a certificate renewal); host preparation,
safe to run again, goes on only once the command left running has ended."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from testbed.up import Testbed
from tests.conftest import running_testbed
from tests.e2e.slack_steps import click, request, wait_reply, wait_text
from tests.e2e.test_durable_resume import calls_of, killed_and_resumed

# The same fixture as there: kubegate serve as its own process, on the full testbed.
from tests.e2e.test_durable_resume import kubegate_process as kubegate_process
from tests.e2e.test_restart import KubegateProcess, until
from tests.e2e.test_rotate_certs import DAY, expire_soon


def snapshot_saves(testbed: Testbed) -> int:
    """How many `etcdctl snapshot save` cp-1's crictl shim was asked to run in etcd's container."""
    return sum(
        1
        for call in testbed.fleet.calls("cp-1")
        if call.argv[:2] == ["crictl", "exec"] and call.argv[-3:-1] == ["snapshot", "save"]
    )


async def test_killed_while_etcdctl_snapshot_save_runs_resume_waits_and_keeps_that_snapshot(
    full_testbed: Testbed, kubegate_process: KubegateProcess
) -> None:
    testbed = full_testbed
    testbed.fleet.hang("cp-1", "crictl exec")  # etcdctl in the etcd container
    root = await request(testbed, "U0ALICE", "backup etcd")
    await click(testbed, "U0BOB", root, "Approve")
    await until(lambda: snapshot_saves(testbed) == 1, timeout=60)

    await killed_and_resumed(testbed, kubegate_process, root.ts)
    waiting = await wait_reply(testbed, root, "waiting for the", timeout=30)
    assert "cp-1: waiting for the `etcdctl snapshot save /var/lib/etcd/kubegate-etcd-" in (
        waiting.text
    )
    testbed.fleet.clear_faults("cp-1")  # the save started before the kill now finishes

    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    await wait_reply(testbed, root, "the snapshot begun before the restart was finished")
    assert snapshot_saves(testbed) == 1
    sealed = list((testbed.directory / "backups" / "testbed").glob("etcd-*.db.enc"))
    assert len(sealed) == 1


def expiry_of(testbed: Testbed, node: str, certificate: str) -> float:
    state = json.loads((testbed.fleet.nodes[node].state_dir / "state.json").read_text())
    return float(state["certs"][certificate])


async def test_killed_while_kubeadm_certs_renew_runs_resume_waits_and_renews_once(
    full_testbed: Testbed, kubegate_process: KubegateProcess
) -> None:
    testbed = full_testbed
    expire_soon(testbed, "cp-1", "apiserver", days=10)
    testbed.fleet.hang("cp-1", "kubeadm certs renew")
    root = await request(testbed, "U0ALICE", "rotate certs")
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await until(lambda: calls_of(testbed, "cp-1", "kubeadm", "certs", "renew") == 1, timeout=60)

    await killed_and_resumed(testbed, kubegate_process, root.ts)
    waiting = await wait_reply(testbed, root, "waiting for the", timeout=30)
    assert "cp-1: waiting for the `kubeadm certs renew all` kubegate started" in waiting.text
    testbed.fleet.clear_faults("cp-1")  # the renewal started before the kill now finishes

    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=90)
    assert calls_of(testbed, "cp-1", "kubeadm", "certs", "renew") == 1
    # The one renewal took effect: the certificate that had 10 days left has a year again.
    assert expiry_of(testbed, "cp-1", "apiserver") > time.time() + 300 * DAY
    await wait_reply(testbed, root, "the renewal started before the restart is not run again")


@pytest.fixture
async def spare_host(tmp_path: Path) -> AsyncIterator[Testbed]:
    """One control plane, one worker and a bare spare host, listed in kubegate's inventory
    under the name it will get."""
    async with running_testbed(
        tmp_path / "testbed", control_planes=1, workers=1, spare=1
    ) as testbed:
        config = yaml.safe_load(testbed.config_path.read_text())
        nodes = config["clusters"][0]["inventory"]["nodes"]
        nodes["worker-9"] = dict(nodes["spare-1"])
        testbed.config_path.write_text(yaml.safe_dump(config))
        yield testbed


async def test_killed_while_swap_is_turned_off_resume_waits_for_it_before_preparing_the_host(
    spare_host: Testbed, tmp_path: Path
) -> None:
    testbed = spare_host
    address = testbed.fleet.nodes["spare-1"].address
    kubegate = KubegateProcess(testbed, tmp_path / "kubegate.db", tmp_path / "kubegate.log")
    await kubegate.start()
    try:
        testbed.fleet.hang("spare-1", "swapoff")
        root = await request(testbed, "U0ALICE", f"provision node worker-9 --address {address}")
        await click(testbed, "U0BOB", root, "Approve")
        await click(testbed, "U0CAROL", root, "Approve")
        await until(lambda: calls_of(testbed, "spare-1", "swapoff") == 1, timeout=60)

        await killed_and_resumed(testbed, kubegate, root.ts)
        waiting = await wait_reply(testbed, root, "waiting for the", timeout=30)
        assert "worker-9: waiting for the `swapoff -a` kubegate started" in waiting.text
        assert calls_of(testbed, "spare-1", "swapoff") == 1  # not a second one beside it
        testbed.fleet.clear_faults("spare-1")

        await wait_reply(testbed, root, "worker-9: that command has ended", timeout=30)
        await wait_text(testbed, root.ts, "SUCCEEDED", timeout=90)
        assert (
            len([c for c in testbed.fleet.calls("spare-1") if c.argv[:2] == ["kubeadm", "join"]])
            == 1
        )
    finally:
        if kubegate.process and kubegate.process.poll() is None:
            kubegate.kill(signal.SIGTERM)
