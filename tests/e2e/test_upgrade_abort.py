"""[Abort] on a halted node upgrade undoes only what is safe to undo: a node whose packages
already moved stays cordoned (DESIGN §7), one whose packages did not is uncordoned."""

from __future__ import annotations

from testbed.slack import Message
from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import click, request, wait_reply, wait_text
from tests.e2e.test_upgrade_node import node_line


async def halted_upgrade(testbed: Testbed, failing: str) -> tuple[str, Message]:
    testbed.apiserver.version = "v1.31.3"
    testbed.fleet.fail("worker-3", failing, exit_code=1, stderr="E: simulated failure")
    root = await request(testbed, "U0ALICE", "upgrade worker-3 --to v1.31.3")
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    halted = await wait_reply(testbed, root, "halted", timeout=30)
    assert "SchedulingDisabled" in await node_line(testbed, "worker-3")
    return root.ts, halted


async def test_an_abort_after_kubeadm_moved_leaves_the_node_cordoned_and_says_why(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    ts, halted = await halted_upgrade(full_testbed, "kubeadm upgrade node")
    await click(full_testbed, "U0ALICE", halted, "Abort")
    cancelled = await wait_text(full_testbed, ts, "CANCELLED")
    assert "worker-3 left cordoned: its packages changed (kubeadm at v1.31.3" in cancelled.shown
    assert "/kube upgrade worker-3 --to v1.31.3" in cancelled.shown
    assert "SchedulingDisabled" in await node_line(full_testbed, "worker-3")


async def test_an_abort_before_any_package_moved_uncordons_the_node_it_cordoned(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    ts, halted = await halted_upgrade(full_testbed, "apt-get install")
    await click(full_testbed, "U0ALICE", halted, "Abort")
    cancelled = await wait_text(full_testbed, ts, "CANCELLED")
    assert "worker-3 uncordoned again" in cancelled.shown
    assert "SchedulingDisabled" not in await node_line(full_testbed, "worker-3")
