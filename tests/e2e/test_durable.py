"""Durable execution on a running `kubegate serve`: halted jobs keep their locks, a Slack outage
delays messages but never steps, answers from the store never wait on the cluster."""

from __future__ import annotations

from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import CHANNEL, unschedulable, wait_ephemeral, wait_reply
from tests.e2e.test_upgrade_node import approve_twice


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
    await wait_ephemeral(testbed, "U0BOB", "locked by job #1")
    assert await unschedulable(testbed, "cp-1") == "true"
