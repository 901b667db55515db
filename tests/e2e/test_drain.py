"""`/kube drain`, taints and HPA bounds through Slack, on a testbed with real workloads and PDBs."""

from __future__ import annotations

import asyncio
import json

from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import (
    CHANNEL,
    audit_of,
    click,
    kubectl,
    request,
    root_messages,
    unschedulable,
    wait_ephemeral,
    wait_reply,
    wait_text,
)


async def pods_on(testbed: Testbed, node: str) -> list[dict[str, object]]:
    out = await asyncio.to_thread(
        kubectl,
        testbed,
        "get",
        "pods",
        "-A",
        "-o",
        "json",
        "--field-selector",
        f"spec.nodeName={node}",
    )
    items: list[dict[str, object]] = json.loads(out)["items"]
    return items


def kinds(pods: list[dict[str, object]]) -> set[str]:
    found = set()
    for pod in pods:
        metadata = pod["metadata"]
        assert isinstance(metadata, dict)
        if "kubernetes.io/config.mirror" in (metadata.get("annotations") or {}):
            found.add("mirror")
        for owner in metadata.get("ownerReferences") or []:
            found.add(owner["kind"])
    return found


async def test_drain_refuses_emptydir_pods_then_evicts_everything_but_daemonset_and_mirror_pods(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.apiserver.load_scenario("drain")
    await testbed.slack.user("U0ALICE").slash("/kube drain worker-1", channel=CHANNEL)
    refusal = await wait_ephemeral(testbed, "U0ALICE", "Refusing to drain worker-1")
    assert "shop/cache" in refusal.shown and "--delete-emptydir-data" in refusal.shown
    assert root_messages(testbed) == [] and await unschedulable(testbed, "worker-1") != "true"

    root = await request(testbed, "U0ALICE", "drain worker-1 --delete-emptydir-data")
    assert "shop/web ×3 (PDB web: 1 disruption allowed now)" in root.shown
    assert "Skipped: 1 DaemonSet pod(s)" in root.shown and "1 mirror pod(s)" in root.shown
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)

    left = await pods_on(testbed, "worker-1")
    assert {"DaemonSet", "mirror"} <= kinds(left), "the DaemonSet and mirror pods stay"
    assert all("mirror" in kinds([pod]) or "DaemonSet" in kinds([pod]) for pod in left)
    assert await unschedulable(testbed, "worker-1") == "true"
    stats = testbed.apiserver.stats()
    assert stats["pdb_violations"] == 0


async def test_dry_run_shows_the_exact_preview_and_changes_nothing(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.apiserver.load_scenario("drain")
    before = await pods_on(testbed, "worker-1")
    await testbed.slack.user("U0ALICE").slash(
        "/kube drain worker-1 --delete-emptydir-data --dry-run", channel=CHANNEL
    )
    preview = await wait_ephemeral(testbed, "U0ALICE", "Dry run")
    assert (
        "Evict" in preview.shown and "shop/web ×3" in preview.shown and "Skipped" in preview.shown
    )
    await asyncio.sleep(0.5)  # a dry run must not act, even a little later
    assert await unschedulable(testbed, "worker-1") != "true"
    assert len(await pods_on(testbed, "worker-1")) == len(before)
    assert root_messages(testbed) == []


async def test_scale_hpa_refuses_inverted_bounds_and_applies_good_ones_in_one_patch(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.apiserver.load_scenario("drain")
    await testbed.slack.user("U0ALICE").slash(
        "/kube scale hpa shop/web --min 5 --max 3", channel=CHANNEL
    )
    await wait_ephemeral(testbed, "U0ALICE", "--min 5 is more than --max 3")
    root = await request(testbed, "U0ALICE", "scale hpa shop/web --min 3 --max 10")
    await click(testbed, "U0BOB", root, "Approve")
    done = await wait_text(testbed, root.ts, "SUCCEEDED")
    assert "max 6 → 10" in done.shown
    hpa = json.loads(
        await asyncio.to_thread(kubectl, testbed, "get", "hpa", "web", "-n", "shop", "-o", "json")
    )
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)


async def test_taint_and_untaint_a_node_and_refuse_kubernetes_own_taints(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "taint worker-2 dedicated=db:NoSchedule")
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED")
    taints = await asyncio.to_thread(
        kubectl, testbed, "get", "node", "worker-2", "-o", "jsonpath={.spec.taints}"
    )
    assert "dedicated" in taints and "NoSchedule" in taints

    root = await request(testbed, "U0ALICE", "untaint worker-2 dedicated")
    await click(testbed, "U0CAROL", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED")
    taints = await asyncio.to_thread(
        kubectl, testbed, "get", "node", "worker-2", "-o", "jsonpath={.spec.taints}"
    )
    assert "dedicated" not in taints

    for text, rule in [
        ("taint worker-1 node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io"),
        ("taint worker-1 key=v:Bogus", "NoSchedule, PreferNoSchedule or NoExecute"),
        ("taint 'worker-1;id' key=v:NoSchedule", "not a valid node name"),
        ("pods ../x", "not a valid node name"),
    ]:
        await testbed.slack.user("U0ALICE").slash(f"/kube {text}", channel=CHANNEL)
        await wait_ephemeral(testbed, "U0ALICE", rule)


async def test_a_drain_that_times_out_stays_cordoned_names_the_pods_and_pdb_and_offers_uncordon(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.apiserver.load_scenario("drain")
    testbed.apiserver.readiness_delay = 60  # replacements never get Ready in time: the PDB holds
    root = await request(testbed, "U0ALICE", "drain worker-1 --delete-emptydir-data --timeout 3s")
    await click(testbed, "U0BOB", root, "Approve")
    halted = await wait_reply(testbed, root, "halted", timeout=30)
    assert "held by PDB shop/web" in halted.shown and "stays cordoned" in halted.shown
    assert "[Retry step]" in halted.shown and "[Uncordon]" in halted.shown
    assert await unschedulable(testbed, "worker-1") == "true"
    assert testbed.apiserver.stats()["pdb_violations"] == 0

    await click(testbed, "U0ALICE", halted, "Uncordon")
    await wait_text(testbed, root.ts, "CANCELLED")
    assert await unschedulable(testbed, "worker-1") != "true"


async def test_cancel_stops_a_drain_a_pdb_holds_at_once_and_uncordons_the_node(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.apiserver.load_scenario("drain")
    testbed.apiserver.readiness_delay = 600  # replacements never get Ready: the PDB holds
    root = await request(testbed, "U0ALICE", "drain worker-1 --delete-emptydir-data --timeout 30m")
    await click(testbed, "U0BOB", root, "Approve")
    await wait_reply(testbed, root, "Step 2/3", timeout=30)
    assert await unschedulable(testbed, "worker-1") == "true"

    await testbed.slack.user("U0ALICE").slash("/kube cancel 1", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "next safe point")
    # Not after the drain's 30 minutes: the eviction step stops between two evictions.
    cancelled = await wait_text(testbed, root.ts, "CANCELLED", timeout=30)
    assert "uncordon" in cancelled.shown.lower()
    assert await unschedulable(testbed, "worker-1") != "true"
    assert testbed.apiserver.stats()["pdb_violations"] == 0


async def test_read_only_views_answer_privately_without_approval(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.apiserver.load_scenario("drain")
    alice = testbed.slack.user("U0ALICE")  # any role reads, with no approval
    await alice.slash("/kube pods worker-1", channel=CHANNEL)
    pods = await wait_ephemeral(testbed, "U0ALICE", "Pods on worker-1")
    assert "shop/web-" in pods.shown and "DaemonSet" in pods.shown and "mirror" in pods.shown
    await alice.slash("/kube status", channel=CHANNEL)
    status = await wait_ephemeral(testbed, "U0ALICE", "nodes Ready")
    assert "4/4 nodes Ready" in status.shown
    await alice.slash("/kube pods worker-9", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "There is no node `worker-9`")
    assert root_messages(testbed) == []


async def test_less_pdb_headroom_after_the_request_stops_the_drain_and_asks_for_fresh_approval(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.apiserver.load_scenario("drain")
    root = await request(testbed, "U0ALICE", "drain worker-1 --delete-emptydir-data")
    assert "PDB api: 1 disruption allowed now" in root.shown
    testbed.apiserver.objects.patch(
        "policy/v1", "poddisruptionbudgets", "shop", "api", {"spec": {"minAvailable": 2}}
    )
    await click(testbed, "U0BOB", root, "Approve")
    again = await wait_text(testbed, root.ts, "Fresh approval needed")
    assert "PDB shop/api has less headroom" in again.shown and "[Approve]" in again.shown
    assert "Needs 1 more approval" in again.shown  # Bob's vote was for the old plan
    assert await unschedulable(testbed, "worker-1") != "true"
    assert "plan.drift" in [e["action"] for e in audit_of(kubegate.db).events()]


async def test_a_new_bare_pod_after_approval_ends_the_drain_without_touching_anything(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.apiserver.load_scenario("drain")
    root = await request(testbed, "U0ALICE", "drain worker-1 --delete-emptydir-data")
    testbed.apiserver.objects.create(
        "v1",
        "pods",
        {
            "metadata": {"name": "debug-shell", "namespace": "default"},
            "spec": {"nodeName": "worker-1", "containers": [{"name": "sh", "image": "busybox"}]},
            "status": {"phase": "Running"},
        },
    )
    await click(testbed, "U0BOB", root, "Approve")
    ended = await wait_text(testbed, root.ts, "FAILED")
    assert (
        "The cluster changed since approval" in ended.shown and "default/debug-shell" in ended.shown
    )
    assert await unschedulable(testbed, "worker-1") != "true"


async def test_a_cordon_done_by_someone_else_meanwhile_ends_as_nothing_to_do(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-2")
    await asyncio.to_thread(kubectl, testbed, "cordon", "worker-2")
    await click(testbed, "U0BOB", root, "Approve")
    done = await wait_text(testbed, root.ts, "SUCCEEDED")
    assert "Nothing done: worker-2 is already cordoned" in done.shown
