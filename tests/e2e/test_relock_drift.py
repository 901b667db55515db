"""A job that drifted and was approved again holds the same locks as at its first start (issue
8): a drain of a control plane keeps the control-plane lock, so a second control-plane change
is refused while it runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    request,
    wait_ephemeral,
    wait_reply,
    wait_text,
)

CONTROL_PLANES: dict[str, Any] = {
    "nodes": [
        {"name": "cp-2", "role": "control-plane", "kubelet_version": "v1.31.2"},
        {"name": "cp-3", "role": "control-plane", "kubelet_version": "v1.31.2"},
    ],
    "manifests": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "agent",
                "namespace": "ops",
                "annotations": {"testbed.kubegate.io/initial-nodes": "cp-2"},
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "agent", "image": "busybox:1.36"}]},
                },
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "agent", "namespace": "ops"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "agent"}}},
        },
    ],
}


def locks_held(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT resource, job_id FROM locks ORDER BY resource").fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def planned_locks(db: Path, job_id: int) -> list[str]:
    with sqlite3.connect(db) as conn:
        (plan,) = conn.execute("SELECT plan FROM jobs WHERE id = ?", [job_id]).fetchone()
    return list(json.loads(plan)["locks"])


async def test_a_control_plane_drain_approved_again_after_drift_keeps_the_control_plane_lock(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.apiserver.load_scenario(CONTROL_PLANES)
    root = await request(testbed, "U0ALICE", "drain cp-2 --timeout 10m")
    assert planned_locks(kubegate.db, 1) == ["node/cp-2", "control-plane"]

    # Before the first start, the PDB loses its headroom: the plan drifted, and from now on the
    # eviction waits (429), so the job keeps running once it is approved again.
    testbed.apiserver.objects.patch(
        "policy/v1", "poddisruptionbudgets", "ops", "agent", {"spec": {"maxUnavailable": 0}}
    )
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "Fresh approval needed", timeout=30)
    await click(testbed, "U0BOB", root, "Approve")
    await wait_reply(testbed, root, "Step 2/3", timeout=30)
    await wait_text(testbed, root.ts, "RUNNING")

    assert set(planned_locks(kubegate.db, 1)) == {"node/cp-2", "control-plane"}
    assert locks_held(kubegate.db) == [("control-plane", 1), ("node/cp-2", 1)]
    await testbed.slack.user("U0CAROL").slash("/kube cordon cp-3", channel=CHANNEL)
    refused = await wait_ephemeral(testbed, "U0CAROL", "holds the control-plane lock")
    assert "Job #1 (`drain cp-2 --timeout 10m`)" in refused.shown

    # Once the PDB allows it the drain finishes and gives every lock back.
    testbed.apiserver.objects.patch(
        "policy/v1", "poddisruptionbudgets", "ops", "agent", {"spec": {"maxUnavailable": 1}}
    )
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    assert locks_held(kubegate.db) == []
