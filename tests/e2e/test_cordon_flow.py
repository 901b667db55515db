"""`/kube cordon worker-2` end to end: signed Slack requests in, a cordoned node out."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from bot.audit import AuditLog
from bot.redact import Redactor
from bot.store import Store
from testbed.slack import Message
from testbed.up import Testbed
from tests.e2e.conftest import Served

CHANNEL = "C0OPS"


def kubectl(testbed: Testbed, *args: str) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(testbed.kubeconfig), *args],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return result.stdout


async def kubectl_async(testbed: Testbed, *args: str) -> str:
    return await asyncio.to_thread(kubectl, testbed, *args)


async def unschedulable(testbed: Testbed, node: str) -> str:
    return await kubectl_async(testbed, "get", "node", node, "-o", "jsonpath={.spec.unschedulable}")


def root_messages(testbed: Testbed) -> list[Message]:
    return [m for m in testbed.slack.messages(CHANNEL) if "job #" in m.shown]


async def request(testbed: Testbed, user: str, text: str) -> Message:
    """Type a slash command and wait for the job's root message."""
    before = len(root_messages(testbed))
    response = await testbed.slack.user(user).slash(f"/kube {text}", channel=CHANNEL)
    assert response.status == 200
    return await testbed.slack.wait_for(
        lambda: root_messages(testbed)[before] if len(root_messages(testbed)) > before else None
    )


async def wait_text(testbed: Testbed, ts: str, needle: str) -> Message:
    def current() -> Message | None:
        message = testbed.slack.message(CHANNEL, ts)
        return message if message and needle in message.shown else None

    return await testbed.slack.wait_for(current, timeout=10)


async def wait_ephemeral(testbed: Testbed, user: str, needle: str) -> Message:
    def found() -> Message | None:
        return next((m for m in testbed.slack.ephemerals(CHANNEL, user) if needle in m.shown), None)

    return await testbed.slack.wait_for(found, timeout=10)


def audit_of(served: Served) -> AuditLog:
    return AuditLog(Store(served.db), Redactor())


def kubegate_cli(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kubegate"), *args],
        env={"KUBEGATE_DB": str(served.db), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_cordon_is_planned_approved_by_another_person_run_and_audited(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-2")
    assert "Cordon worker-2" in root.shown and "<@U0ALICE>" in root.shown
    assert "Needs 1 more approval" in root.shown

    await testbed.slack.user("U0ALICE").click(channel=CHANNEL, message_ts=root.ts, label="Approve")
    await wait_ephemeral(testbed, "U0ALICE", "your vote does not count")
    assert await unschedulable(testbed, "worker-2") != "true"

    await testbed.slack.user("U0BOB").click(channel=CHANNEL, message_ts=root.ts, label="Approve")
    done = await wait_text(testbed, root.ts, "SUCCEEDED")
    assert "Approved by <@U0BOB>" in done.shown
    assert await unschedulable(testbed, "worker-2") == "true"
    replies = testbed.slack.replies(CHANNEL, root.ts)
    assert len(replies) == 1 and "Step 1/1" in replies[0].shown and "✅" in replies[0].shown

    actions = [event["action"] for event in audit_of(kubegate).events()]
    assert actions.count("refusal") == 1 and "vote" in actions and "step.finish" in actions
    result = kubegate_cli(kubegate, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit chain OK" in result.stdout
