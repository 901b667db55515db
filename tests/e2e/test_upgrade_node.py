"""`/kube upgrade <node> --to v1.x.y` through Slack: skew rules, the kubeadm procedure over real
SSH to the fleet's shims, the health gate, and a failing step halting the job."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubectl,
    kubegate_cli,
    request,
    root_messages,
    wait_ephemeral,
    wait_reply,
    wait_text,
)
from tests.e2e.test_restart import KubegateProcess, until

APT_KUBEADM = [
    ["apt-mark", "unhold", "kubeadm"],
    ["apt-get", "update"],
    ["apt-get", "install", "-y", "kubeadm=1.31.3-*"],
    ["apt-mark", "hold", "kubeadm"],
]
APT_KUBELET = [
    ["apt-mark", "unhold", "kubelet", "kubectl"],
    ["apt-get", "update"],
    ["apt-get", "install", "-y", "kubelet=1.31.3-*", "kubectl=1.31.3-*"],
    ["apt-mark", "hold", "kubelet", "kubectl"],
]
RESTART = [["systemctl", "daemon-reload"], ["systemctl", "restart", "kubelet"]]


def changes_made(testbed: Testbed, node: str) -> list[list[str]]:
    """The shimmed commands the node ran, without sudo's own line and read-only probes."""
    probes = (["kubeadm", "version"], ["kubelet", "--version"], ["apt-mark", "showhold"])
    return [
        call.argv
        for call in testbed.fleet.calls(node)
        if call.argv[0] != "sudo" and not any(call.argv[: len(p)] == p for p in probes)
    ]


def backups(testbed: Testbed) -> list[Path]:
    return sorted((testbed.directory / "backups" / "testbed").glob("etcd-*.db.enc"))


async def node_line(testbed: Testbed, node: str) -> str:
    return await asyncio.to_thread(kubectl, testbed, "get", "node", node, "--no-headers")


async def approve_twice(testbed: Testbed, text: str) -> str:
    root = await request(testbed, "U0ALICE", text)
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    return root.ts


async def test_a_worker_takes_a_newer_patch_than_the_api_server_the_kubeadm_way_gated_before_uncordon(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    # The skew policy lets a worker take a newer patch of the API servers' minor.
    root = await request(testbed, "U0ALICE", "upgrade worker-3 --to v1.31.3")
    assert "kubelet v1.31.2 → v1.31.3" in root.shown and "API server v1.31.2" in root.shown
    assert "Needs 2 more approvals" in root.shown
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "Needs 1 more approval")
    await click(testbed, "U0CAROL", root, "Approve")
    done = await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    assert "<@U0BOB>" in done.shown and "<@U0CAROL>" in done.shown

    shown = "\n".join(m.shown for m in testbed.slack.replies(CHANNEL, root.ts))
    for step in (
        "kubeadm package",
        "`kubeadm upgrade node` on worker-3",
        "Drain: cordon",
        "Drain: evict",
        "kubelet and kubectl",
        "Restart the kubelet",
        "Uncordon worker-3",
        "Health gate",
    ):
        assert step in shown, step
    assert shown.index("Health gate") < shown.index("Uncordon worker-3")
    line = await node_line(testbed, "worker-3")
    assert "v1.31.3" in line and "SchedulingDisabled" not in line, line
    assert changes_made(testbed, "worker-3") == [
        *APT_KUBEADM,
        ["kubeadm", "upgrade", "node"],
        *APT_KUBELET,
        *RESTART,
    ]
    assert testbed.fleet.node_state("worker-3")["held"] == ["kubeadm", "kubectl", "kubelet"]
    verified = kubegate_cli(kubegate_on_machines.db, "audit", "verify")
    assert verified.returncode == 0 and "audit chain OK" in verified.stdout, verified.stdout


async def test_the_first_control_plane_applies_the_upgrade_and_moves_the_api_server(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    ts = await approve_twice(testbed, "upgrade cp-1 --to v1.31.3")
    await wait_text(testbed, ts, "SUCCEEDED", timeout=60)
    assert testbed.apiserver.version == "v1.31.3"
    made = changes_made(testbed, "cp-1")
    etcd = [call for call in made if call[0] == "crictl"]
    # etcd asked for every member's health, then a snapshot saved and checked, all before
    # kubeadm touched anything.
    assert any("health" in call and "--cluster" in call for call in etcd)
    assert any("snapshot" in call and "save" in call for call in etcd)
    assert backups(testbed), "the snapshot was copied off the host"
    assert [call for call in made if call[0] not in ("crictl", "sha256sum", "rm")] == [
        *APT_KUBEADM,
        ["kubeadm", "upgrade", "apply", "v1.31.3", "--yes"],
        *APT_KUBELET,
        *RESTART,
    ]
    line = await node_line(testbed, "cp-1")
    assert "v1.31.3" in line and "SchedulingDisabled" not in line, line


async def test_skipping_a_minor_and_downgrading_are_refused_with_the_skew_rule(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    slack = testbed.slack.user("U0ALICE")
    await slack.slash("/kube upgrade worker-3 --to v1.33.0", channel=CHANNEL)
    skipped = await wait_ephemeral(testbed, "U0ALICE", "one minor at a time")
    assert "Refusing to upgrade worker-3 to v1.33.0" in skipped.shown
    assert "never be a newer minor than the oldest API server" in skipped.shown
    await slack.slash("/kube upgrade worker-3 --to v1.30.9", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "does not downgrade")
    await slack.slash("/kube upgrade worker-3 --to v1.31.2", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "worker-3 already runs v1.31.2; nothing to do")
    await slack.slash("/kube upgrade cluster --to v1.33.0", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "Refusing to upgrade cluster testbed to v1.33.0")
    assert root_messages(testbed) == []
    assert changes_made(testbed, "worker-3") == []


async def test_a_failing_kubeadm_upgrade_node_halts_the_job_with_its_output_and_leaves_the_node(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    testbed.apiserver.version = "v1.31.3"
    testbed.fleet.fail(
        "worker-3",
        "kubeadm upgrade node",
        exit_code=1,
        stderr="[upgrade] FATAL: couldn't reach the API server: etcd unreachable",
    )
    ts = await approve_twice(testbed, "upgrade worker-3 --to v1.31.3")
    root = testbed.slack.message(CHANNEL, ts)
    assert root is not None
    halted = await wait_reply(testbed, root, "halted", timeout=30)
    assert "step 6" in halted.shown and "`kubeadm upgrade node` failed on worker-3 (exit 1)" in (
        halted.shown
    )
    assert "[Retry step]" in halted.shown and "[Abort]" in halted.shown
    step = await wait_reply(testbed, root, "Step 6/10")
    assert "etcd unreachable" in step.shown  # the output tail
    await wait_text(testbed, ts, "FAILED")
    line = await node_line(testbed, "worker-3")
    assert "v1.31.2" in line and "SchedulingDisabled" in line, line  # drained, left cordoned
    ran = changes_made(testbed, "worker-3")
    assert ran == [*APT_KUBEADM, ["kubeadm", "upgrade", "node"]]
    steps = json.dumps(testbed.slack.transcript_json())
    assert "kubelet=1.31.3" not in steps


async def pods_on(testbed: Testbed, node: str) -> list[str]:
    listed = await asyncio.to_thread(
        kubectl,
        testbed,
        "get",
        "pods",
        "-A",
        "--field-selector",
        f"spec.nodeName={node}",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{'\\n'}{end}",
    )
    return listed.split()


async def test_an_upgrade_drains_through_pdbs_and_waits_for_the_nodes_daemonset_pods(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    await testbed.apiserver.load_scenario("drain")
    testbed.apiserver.version = "v1.31.3"
    before = await pods_on(testbed, "worker-2")
    root = await request(testbed, "U0ALICE", "upgrade worker-2 --to v1.31.3")
    assert "Skipped: 1 DaemonSet pod(s)" in root.shown and "PDB" in root.shown
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)
    after = await pods_on(testbed, "worker-2")
    evicted = [p for p in before if "node-agent" not in p]
    assert evicted and not set(evicted) & set(after)
    assert any("node-agent" in p for p in after)  # its DaemonSet pod stayed, and is Ready
    assert testbed.apiserver.pdb_violations == 0
    assert "DaemonSet pods Ready" in "\n".join(
        m.shown for m in testbed.slack.replies(CHANNEL, root.ts)
    )


async def test_an_upgrade_that_would_lose_a_bare_pod_is_refused_before_anything_runs(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    await testbed.apiserver.load_scenario("drain")
    testbed.apiserver.version = "v1.31.3"
    await testbed.slack.user("U0ALICE").slash(
        "/kube upgrade worker-3 --to v1.31.3", channel=CHANNEL
    )
    refusal = await wait_ephemeral(testbed, "U0ALICE", "Refusing to upgrade worker-3")
    assert "debug" in refusal.shown and "Add --force" in refusal.shown
    assert root_messages(testbed) == [] and changes_made(testbed, "worker-3") == []


async def test_a_node_upgrade_killed_mid_step_resumes_without_repeating_a_finished_step(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    testbed, db = full_testbed, tmp_path / "kubegate.db"
    testbed.apiserver.version = "v1.31.3"
    kubegate = KubegateProcess(testbed, db, tmp_path / "kubegate.log")
    await kubegate.start()
    try:
        # Hangs the first restart, which outlives its SSH session as on a real host.
        testbed.fleet.hang("worker-3", "systemctl restart", times=1)
        ts = await approve_twice(testbed, "upgrade worker-3 --to v1.31.3")
        await until(lambda: RESTART[1] in changes_made(testbed, "worker-3"), timeout=30)
        kubegate.kill()  # SIGKILL in the middle of step 8
        testbed.fleet.clear_faults("worker-3")  # the orphaned restart goes on and ends

        await kubegate.start()
        root = testbed.slack.message(CHANNEL, ts)
        assert root is not None
        note = await wait_reply(testbed, root, "was interrupted at step 8")
        await click(testbed, "U0ALICE", note, "Resume")
        await wait_text(testbed, ts, "SUCCEEDED", timeout=60)
    finally:
        kubegate.kill(signal.SIGTERM)
    line = await node_line(testbed, "worker-3")
    assert "v1.31.3" in line and "SchedulingDisabled" not in line, line
    # Steps 1-7 ran once; the interrupted step 8's restart, started before the kill, took
    # effect: Resume found the kubelet at the target and did not restart it again.
    assert changes_made(testbed, "worker-3") == [
        *APT_KUBEADM,
        ["kubeadm", "upgrade", "node"],
        *APT_KUBELET,
        *RESTART,
    ]
    assert kubegate_cli(db, "audit", "verify").returncode == 0
