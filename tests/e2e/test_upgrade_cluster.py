"""`/kube upgrade cluster`: etcd first, control plane next, then workers rolling within
--max-unavailable, with workloads behind PDBs that are never violated."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubectl,
    request,
    wait_ephemeral,
    wait_reply,
    wait_text,
)
from tests.e2e.test_restart import KubegateProcess, until
from tests.e2e.test_upgrade_node import approve_twice

WORKERS = [f"worker-{i}" for i in range(1, 9)]
WORKLOAD: dict[str, Any] = {
    "readiness_delay": 0.3,
    "termination_delay": 0.3,
    "manifests": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "annotations": {"testbed.kubegate.io/initial-nodes": ",".join(WORKERS[:6])},
            },
            "spec": {
                "replicas": 6,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        },
    ],
}


def first_call(testbed: Testbed, node: str, *words: str) -> float:
    times = [c.time for c in testbed.fleet.calls(node) if all(w in c.argv for w in words)]
    assert times, f"{node} never ran {' '.join(words)}"
    return min(times)


async def test_a_cluster_upgrade_backs_up_etcd_then_control_plane_then_rolls_workers_within_the_limit(
    big_testbed: Testbed, kubegate_on_big_testbed: Served
) -> None:
    testbed = big_testbed
    await testbed.apiserver.load_scenario(WORKLOAD)
    ts = await approve_twice(testbed, "upgrade cluster --to v1.31.3 --max-unavailable 2")
    root = testbed.slack.message(CHANNEL, ts)
    assert root is not None
    await wait_text(testbed, ts, "SUCCEEDED", timeout=240)

    nodes = json.loads(await asyncio.to_thread(kubectl, testbed, "get", "nodes", "-o", "json"))[
        "items"
    ]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {"v1.31.3"}
    assert not any(n["spec"].get("unschedulable") for n in nodes)
    stats = testbed.apiserver.stats()
    assert stats["max_unschedulable_nodes"] <= 2 and stats["pdb_violations"] == 0

    snapshot = first_call(testbed, "cp-1", "snapshot", "save")
    apply = first_call(testbed, "cp-1", "upgrade", "apply")
    assert snapshot < apply
    assert all(apply < first_call(testbed, worker, "kubeadm=1.31.3-*") for worker in WORKERS)
    await wait_reply(testbed, root, "8 node(s) upgraded")


async def test_a_failing_worker_halts_the_rollout_and_the_thread_reports_every_node(
    big_testbed: Testbed, kubegate_on_big_testbed: Served
) -> None:
    testbed = big_testbed
    testbed.fleet.fail(
        "worker-1", "kubeadm upgrade node", exit_code=1, stderr="[upgrade] FATAL: preflight failed"
    )
    ts = await approve_twice(testbed, "upgrade cluster --to v1.31.3 --max-unavailable 1")
    root = testbed.slack.message(CHANNEL, ts)
    assert root is not None
    halted = await wait_reply(testbed, root, "halted", timeout=240)
    assert "worker-1: FAILED" in halted.shown and "`kubeadm upgrade node`" in halted.shown
    assert "worker-8: not started" in halted.shown and "[Retry step]" in halted.shown
    step = await wait_reply(testbed, root, "Step 5/5")
    assert "preflight failed" in step.shown  # the failed command's output tail
    started = [
        w for w in WORKERS if any("kubeadm=1.31.3-*" in c.argv for c in testbed.fleet.calls(w))
    ]
    assert started == ["worker-1"], "no new node may start after the first failure"


async def test_a_cluster_upgrade_holds_the_whole_cluster_and_waits_for_node_jobs(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    alice = testbed.slack.user("U0ALICE")
    await request(testbed, "U0ALICE", "upgrade cluster --to v1.31.3")
    await alice.slash("/kube cordon worker-1", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "locked by job #1")
    await alice.slash("/kube cancel 1", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "cancelled")
    await request(testbed, "U0ALICE", "cordon worker-1")  # job #2 now holds worker-1
    await alice.slash("/kube upgrade cluster --to v1.31.3", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "locked by job #2")


async def test_a_cluster_upgrade_killed_mid_rollout_resumes_and_uncordons_the_node_it_cordoned(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    testbed, db = full_testbed, tmp_path / "kubegate.db"
    kubegate = KubegateProcess(testbed, db, tmp_path / "kubegate.log")
    await kubegate.start()
    try:
        # Outlives its SSH session, as a command started without a pty does on a real host.
        testbed.fleet.hang("worker-2", "systemctl restart", times=1)
        ts = await approve_twice(testbed, "upgrade cluster --to v1.31.3 --max-unavailable 1")
        await until(
            lambda: any(
                c.argv[:2] == ["systemctl", "restart"] for c in testbed.fleet.calls("worker-2")
            ),
            timeout=120,
        )
        kubegate.kill()  # SIGKILL with worker-2 drained and half upgraded
        testbed.fleet.clear_faults("worker-2")  # the orphaned restart ends; Resume waits for it
        await kubegate.start()
        root = testbed.slack.message(CHANNEL, ts)
        assert root is not None
        note = await wait_reply(testbed, root, "was interrupted")
        await click(testbed, "U0ALICE", note, "Resume")
        await wait_text(testbed, ts, "SUCCEEDED", timeout=180)
    finally:
        kubegate.kill(signal.SIGTERM)
    nodes = json.loads(await asyncio.to_thread(kubectl, testbed, "get", "nodes", "-o", "json"))[
        "items"
    ]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {"v1.31.3"}
    assert not any(n["spec"].get("unschedulable") for n in nodes), "worker-2 must be uncordoned"
    upgrades = [
        c for c in testbed.fleet.calls("worker-1") if c.argv[:3] == ["kubeadm", "upgrade", "node"]
    ]
    assert len(upgrades) == 1, "a node finished before the crash is not upgraded again"
    assert testbed.apiserver.stats()["max_unschedulable_nodes"] <= 1
