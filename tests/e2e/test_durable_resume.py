"""kill -9 of `kubegate serve` mid-upgrade, then Resume: a remote command still running on the
node is waited for, never started twice; a node's checks (health gate, uncordon) run again
even though its kubelet already reports the target."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from testbed.up import Testbed
from tests.e2e.slack_steps import CHANNEL, click, kubectl, unschedulable, wait_reply, wait_text
from tests.e2e.test_restart import KubegateProcess, job_state, until
from tests.e2e.test_upgrade_node import approve_twice

Node = dict[str, Any]


@pytest.fixture
async def kubegate_process(full_testbed: Testbed, tmp_path: Path) -> AsyncIterator[KubegateProcess]:
    served = KubegateProcess(full_testbed, tmp_path / "kubegate.db", tmp_path / "kubegate.log")
    await served.start()
    try:
        yield served
    finally:
        if served.process and served.process.poll() is None:
            served.kill(signal.SIGTERM)


def calls_of(testbed: Testbed, node: str, *prefix: str) -> int:
    """How many times the node's shims ran a command starting with `prefix` (its call log)."""
    return sum(1 for c in testbed.fleet.calls(node) if c.argv[: len(prefix)] == list(prefix))


async def killed_and_resumed(testbed: Testbed, kubegate: KubegateProcess, root_ts: str) -> None:
    """kill -9 kubegate, start it again and click Resume on its note at once."""
    kubegate.kill(signal.SIGKILL)
    await kubegate.start()
    root = testbed.slack.message(CHANNEL, root_ts)
    assert root is not None
    note = await wait_reply(testbed, root, "was interrupted", timeout=30)
    await click(testbed, "U0ALICE", note, "Resume")


async def test_killed_while_kubeadm_upgrade_apply_runs_resume_waits_for_it_and_it_runs_once(
    full_testbed: Testbed, kubegate_process: KubegateProcess
) -> None:
    testbed = full_testbed
    testbed.fleet.hang("cp-1", "kubeadm upgrade apply")
    ts = await approve_twice(testbed, "upgrade cp-1 --to v1.31.3")
    await until(lambda: calls_of(testbed, "cp-1", "kubeadm", "upgrade", "apply") == 1, timeout=120)

    await killed_and_resumed(testbed, kubegate_process, ts)
    root = testbed.slack.message(CHANNEL, ts)
    assert root is not None
    waiting = await wait_reply(testbed, root, "waiting for the", timeout=30)
    assert "`kubeadm upgrade apply v1.31.3 --yes` kubegate started before it restarted (pid" in (
        waiting.text
    )
    testbed.fleet.clear_faults("cp-1")  # the apply started before the kill now finishes

    await wait_text(testbed, ts, "SUCCEEDED", timeout=120)
    assert calls_of(testbed, "cp-1", "kubeadm", "upgrade", "apply") == 1
    assert await unschedulable(testbed, "cp-1") != "true"


def set_memory_pressure(testbed: Testbed, node: str, *, on: bool) -> None:
    """The node's kubelet reports MemoryPressure (True) or sufficient memory (False), as a
    kubelet under eviction pressure does (pkg/kubelet/nodestatus/setters.go)."""

    def report(current: Node) -> Node:
        for condition in current["status"]["conditions"]:
            if condition["type"] == "MemoryPressure":
                condition["status"] = "True" if on else "False"
                condition["reason"] = (
                    "KubeletHasInsufficientMemory" if on else "KubeletHasSufficientMemory"
                )
        return current

    testbed.apiserver.objects.update("v1", "nodes", None, node, report)


def wave_steps_done(db: Path, node: str) -> list[str]:
    """The steps of `node`'s upgrade the rolling wave's checkpoint records as finished."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT data FROM steps WHERE name = 'upgrade-workers'").fetchall()
    steps = json.loads(rows[0][0]).get("steps", {}) if rows else {}
    return list(steps.get(node, {}))


async def test_killed_in_a_health_gate_resume_waits_for_the_gate_and_uncordons_the_node(
    full_testbed: Testbed, kubegate_process: KubegateProcess
) -> None:
    testbed, db = full_testbed, Path(kubegate_process.env["KUBEGATE_DB"])
    testbed.fleet.hang("worker-1", "systemctl restart kubelet")
    ts = await approve_twice(testbed, "upgrade cluster --to v1.31.3")
    await until(lambda: calls_of(testbed, "worker-1", "systemctl", "restart") == 1, timeout=180)
    set_memory_pressure(testbed, "worker-1", on=True)  # the restarted kubelet finds it short
    testbed.fleet.clear_faults("worker-1")
    await until(lambda: "restart-kubelet" in wave_steps_done(db, "worker-1"), timeout=60)

    await killed_and_resumed(testbed, kubegate_process, ts)
    await until(lambda: job_state(db, 1) == "RUNNING", timeout=30)
    # The gate holds the rollout: worker-1 stays out of service, no other worker starts.
    for _ in range(3):
        await asyncio.sleep(2)  # a span of time where nothing may happen, not a wait for it
        assert job_state(db, 1) == "RUNNING"
        assert await unschedulable(testbed, "worker-1") == "true"
        assert calls_of(testbed, "worker-2", "kubeadm") == 0
        assert calls_of(testbed, "worker-3", "kubeadm") == 0

    set_memory_pressure(testbed, "worker-1", on=False)
    await wait_text(testbed, ts, "SUCCEEDED", timeout=240)
    nodes = json.loads(await asyncio.to_thread(kubectl, testbed, "get", "nodes", "-o", "json"))
    assert not any(n["spec"].get("unschedulable") for n in nodes["items"])
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes["items"]} == {"v1.31.3"}
    assert calls_of(testbed, "worker-1", "kubeadm", "upgrade", "node") == 1
    assert calls_of(testbed, "worker-1", "systemctl", "restart", "kubelet") == 1
