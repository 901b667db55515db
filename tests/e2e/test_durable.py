"""Durable execution on a running `kubegate serve`: halted jobs keep their locks, a Slack outage
delays messages but never steps, answers from the store never wait on the cluster."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubectl,
    kubegate_cli,
    request,
    unschedulable,
    wait_ephemeral,
    wait_reply,
    wait_text,
)
from tests.e2e.test_restart import KubegateProcess, job_state, until
from tests.e2e.test_upgrade_node import approve_twice


def job_steps(db: Path, job_id: int) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT state FROM steps WHERE job_id = ? ORDER BY idx", [job_id])
        return [r[0] for r in rows]


async def test_a_failed_upgrade_keeps_its_control_plane_locked_and_uncordon_is_refused(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    testbed.fleet.fail("cp-1", "kubeadm upgrade apply", stderr="[upgrade] FATAL: etcd unhealthy")
    ts = await approve_twice(testbed, "upgrade cluster --to v1.31.3")
    root = testbed.slack.message(CHANNEL, ts)
    assert root is not None
    halted = await wait_reply(testbed, root, "[Retry step]", timeout=120)
    assert "[Abort" in halted.shown
    assert await unschedulable(testbed, "cp-1") == "true"  # drained, then the apply failed

    await testbed.slack.user("U0BOB").slash("/kube uncordon cp-1", channel=CHANNEL)
    refused = await wait_ephemeral(testbed, "U0BOB", "Job #1")
    assert "lock" in refused.shown  # the node lock or the control-plane lock, named with its job
    assert await unschedulable(testbed, "cp-1") == "true"


def locks_left(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT resource, job_id FROM locks")]


def step_numbers(testbed: Testbed, root_ts: str) -> list[int]:
    """The step numbers of a job's thread replies, in the order Slack shows them."""
    numbers = []
    for message in testbed.slack.replies(CHANNEL, root_ts):
        found = re.search(r"Step (\d+)/\d+", message.text)
        if found:
            numbers.append(int(found.group(1)))
    return numbers


@pytest.mark.parametrize("code", ["500", "429"])
async def test_a_slack_outage_delays_messages_but_never_steps(
    full_testbed: Testbed, kubegate_on_machines: Served, code: str
) -> None:
    testbed, db = full_testbed, kubegate_on_machines.db
    testbed.apiserver.version = "v1.31.3"
    upgrade = await approve_twice(testbed, "upgrade worker-1 --to v1.31.3")
    cordon = await request(testbed, "U0ALICE", "cordon worker-3")
    await until(lambda: job_state(db, 1) == "RUNNING", timeout=30)
    assert testbed.faults is not None
    await testbed.faults.apply("slack-error", [code, "--for", "20s"])
    await click(testbed, "U0BOB", cordon, "Approve")  # its root message cannot be updated now

    # Both jobs run to their end while every Slack call still fails.
    await until(lambda: job_state(db, 1) == job_state(db, 2) == "SUCCEEDED", timeout=60)
    assert testbed.slack.api.outage is not None, "the jobs had to wait for Slack"
    assert await unschedulable(testbed, "worker-3") == "true"
    assert locks_left(db) == []

    # Once Slack answers again, every message arrives, in order.
    await wait_text(testbed, upgrade, "SUCCEEDED", timeout=60)
    await wait_text(testbed, cordon.ts, "SUCCEEDED", timeout=30)
    upgrade_steps = len(job_steps(db, 1))
    await testbed.slack.wait_for(
        lambda: len(step_numbers(testbed, upgrade)) == upgrade_steps or None, timeout=30
    )
    assert step_numbers(testbed, upgrade) == list(range(1, upgrade_steps + 1))
    assert step_numbers(testbed, cordon.ts) == list(range(1, len(job_steps(db, 2)) + 1))
    replies = testbed.slack.replies(CHANNEL, upgrade)
    assert all(m.shown.startswith("✅") for m in replies), [m.text for m in replies]


def launch(kubegate: KubegateProcess) -> None:
    """`kubegate serve` started without waiting for it to answer (a standby does not)."""
    with kubegate.log.open("ab") as out:
        kubegate.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "kubegate"), "serve"],
            env=kubegate.env,
            stdout=out,
            stderr=out,
        )


def upgrade_node_calls(testbed: Testbed, node: str) -> int:
    calls = testbed.fleet.calls(node)
    return sum(1 for c in calls if c.argv[:3] == ["kubeadm", "upgrade", "node"])


async def test_a_second_kubegate_on_the_same_database_stands_by_and_no_step_runs_twice(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    testbed, db = full_testbed, tmp_path / "kubegate.db"
    testbed.apiserver.version = "v1.31.3"
    first = KubegateProcess(testbed, db, tmp_path / "first.log")
    await first.start()
    second = KubegateProcess(testbed, db, tmp_path / "second.log")
    testbed.slack.app_url = f"http://127.0.0.1:{first.port}/slack/events"
    try:
        testbed.fleet.hang("worker-1", "kubeadm upgrade node")
        ts = await approve_twice(testbed, "upgrade worker-1 --to v1.31.3")
        await until(lambda: upgrade_node_calls(testbed, "worker-1") == 1, timeout=60)

        launch(second)  # by mistake, mid-upgrade, on the same database
        await until(lambda: "stands by" in second.log.read_text(), timeout=30)
        status, reason = await readyz(second.port)  # it answers probes, not Slack
        assert status == 503 and "standing by" in reason
        testbed.fleet.clear_faults("worker-1")
        await wait_text(testbed, ts, "SUCCEEDED", timeout=90)
        assert job_state(db, 1) == "SUCCEEDED"
        assert second.process is not None and second.process.poll() is None
        assert "now runs the jobs" not in second.log.read_text()

        first.kill(signal.SIGTERM)  # a clean stop hands the jobs over at once
        await until(lambda: "now runs the jobs" in second.log.read_text(), timeout=30)
    finally:
        for served in (first, second):
            if served.process and served.process.poll() is None:
                served.kill(signal.SIGTERM)
    assert upgrade_node_calls(testbed, "worker-1") == 1
    assert "job.interrupted" not in kubegate_cli(db, "audit", "export").stdout


async def readyz(port: int) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status, await response.text()


def kubelet_installs(testbed: Testbed, node: str) -> int:
    calls = testbed.fleet.calls(node)
    return sum(
        1 for c in calls if c.argv[:2] == ["apt-get", "install"] and "kubelet=1.31.3-*" in c.argv
    )


async def test_a_full_database_halts_the_job_visibly_and_it_finishes_once_space_returns(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    testbed, db = full_testbed, tmp_path / "kubegate.db"
    testbed.apiserver.version = "v1.31.3"
    kubegate = KubegateProcess(testbed, db, tmp_path / "kubegate.log")
    await kubegate.start()
    assert kubegate.process is not None
    pid = kubegate.process.pid
    try:
        testbed.fleet.hang("worker-1", "kubeadm upgrade node")
        ts = await approve_twice(testbed, "upgrade worker-1 --to v1.31.3")
        await until(lambda: upgrade_node_calls(testbed, "worker-1") == 1, timeout=60)
        # The disk is full for kubegate: no file of it may grow by a byte (RLIMIT_FSIZE, as
        # `prlimit --fsize=0`); kubegate ignores SIGXFSZ, so its writes fail with EFBIG.
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        testbed.fleet.clear_faults("worker-1")  # the step ends; its end cannot be recorded

        root = testbed.slack.message(CHANNEL, ts)
        assert root is not None
        await wait_reply(testbed, root, "kubegate cannot write its database", timeout=30)
        status, reason = await readyz(kubegate.port)
        assert status == 503 and "cannot write its database" in reason
        assert kubelet_installs(testbed, "worker-1") == 0, "nothing may go on unrecorded"
        assert job_state(db, 1) == "RUNNING"

        resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        await wait_reply(testbed, root, "can write its database again", timeout=30)
        await wait_text(testbed, ts, "SUCCEEDED", timeout=90)
        assert await readyz(kubegate.port) == (200, "ready\n")
    finally:
        kubegate.kill(signal.SIGTERM)
    assert upgrade_node_calls(testbed, "worker-1") == 1
    assert kubelet_installs(testbed, "worker-1") == 1, [
        c.argv for c in testbed.fleet.calls("worker-1")
    ]
    assert kubegate_cli(db, "audit", "verify").returncode == 0


async def answered_within(testbed: Testbed, user: str, text: str, needle: str) -> float:
    """Seconds from typing `text` to its acknowledgement and then its private answer."""
    loop = asyncio.get_running_loop()
    typed = loop.time()
    response = await testbed.slack.user(user).slash(text, channel=CHANNEL)
    assert response.status == 200
    await wait_ephemeral(testbed, user, needle)
    return loop.time() - typed


async def test_with_the_api_hanging_jobs_and_cancel_answer_at_once(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-2")
    assert testbed.faults is not None
    await testbed.faults.apply("apiserver-hang", ["--for", "20s"])
    await click(testbed, "U0BOB", root, "Approve")  # its drift re-check now waits on the API
    alice = testbed.slack.user("U0ALICE")
    for _ in range(3):  # more cluster reads than there are answer slots, all waiting
        assert (await alice.slash("/kube status", channel=CHANNEL)).status == 200
    await until(lambda: job_state(kubegate.db, 1) == "RUNNING", timeout=10)

    assert await answered_within(testbed, "U0BOB", "/kube jobs", "Recent jobs") < 1.0
    took = await answered_within(testbed, "U0BOB", "/kube cancel 1", "next safe point")
    assert took < 1.0

    await testbed.faults.apply("apiserver-hang-clear", [])
    await wait_text(testbed, root.ts, "CANCELLED", timeout=30)
    assert await unschedulable(testbed, "worker-2") != "true"


async def test_a_brief_run_of_api_server_errors_is_retried_and_the_job_succeeds(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-1")
    assert testbed.faults is not None
    await testbed.faults.apply("apiserver-error", ["503", "--for", "1s"])
    await click(testbed, "U0BOB", root, "Approve")  # its re-check meets the 503s
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=30)
    assert await unschedulable(testbed, "worker-1") == "true"


async def test_sshd_killed_mid_upgrade_then_back_and_retry_step_finishes_the_rollout(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    assert testbed.faults is not None
    testbed.fleet.hang("worker-1", "kubeadm upgrade node")
    ts = await approve_twice(testbed, "upgrade cluster --to v1.31.3")
    await until(lambda: upgrade_node_calls(testbed, "worker-1") == 1, timeout=120)
    await testbed.faults.apply("sshd-down", ["worker-1"])
    root = testbed.slack.message(CHANNEL, ts)
    assert root is not None
    halted = await wait_reply(testbed, root, "[Retry step]", timeout=120)

    await testbed.faults.apply("sshd-up", ["worker-1"])
    testbed.fleet.clear_faults("worker-1")
    await click(testbed, "U0ALICE", halted, "Retry step")
    await wait_text(testbed, ts, "SUCCEEDED", timeout=180)
    nodes = json.loads(await asyncio.to_thread(kubectl, testbed, "get", "nodes", "-o", "json"))
    items = nodes["items"]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in items} == {"v1.31.3"}
    assert not any(n["spec"].get("unschedulable") for n in items)
