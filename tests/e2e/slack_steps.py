"""The conversation steps e2e tests are written in: type a command, click, read the channel."""

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

CHANNEL = "C0OPS"


def kubectl(testbed: Testbed, *args: str) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(testbed.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


async def unschedulable(testbed: Testbed, node: str) -> str:
    jsonpath = "jsonpath={.spec.unschedulable}"
    return await asyncio.to_thread(kubectl, testbed, "get", "node", node, "-o", jsonpath)


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


async def click(testbed: Testbed, user: str, message: Message, label: str) -> None:
    response = await testbed.slack.user(user).click(
        channel=CHANNEL, message_ts=message.ts, label=label
    )
    assert response.status == 200


async def wait_text(testbed: Testbed, ts: str, needle: str, timeout: float = 10) -> Message:
    def current() -> Message | None:
        message = testbed.slack.message(CHANNEL, ts)
        return message if message and needle in message.shown else None

    return await testbed.slack.wait_for(current, timeout=timeout)


async def wait_ephemeral(testbed: Testbed, user: str, needle: str) -> Message:
    def found() -> Message | None:
        return next((m for m in testbed.slack.ephemerals(CHANNEL, user) if needle in m.shown), None)

    return await testbed.slack.wait_for(found, timeout=10)


async def wait_reply(testbed: Testbed, root: Message, needle: str, timeout: float = 10) -> Message:
    def found() -> Message | None:
        return next((m for m in testbed.slack.replies(CHANNEL, root.ts) if needle in m.shown), None)

    return await testbed.slack.wait_for(found, timeout=timeout)


def audit_of(db: Path) -> AuditLog:
    return AuditLog(Store(db), Redactor())


def kubegate_cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kubegate"), *args],
        env={"KUBEGATE_DB": str(db), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
