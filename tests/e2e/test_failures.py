"""When kubegate itself fails in the background, the person who asked hears it privately with a
reference, and the log has one record with the traceback under that reference."""

from __future__ import annotations

import logging
import re
from typing import NoReturn

import pytest

import bot.actions
import bot.alerts
import bot.readonly
from commands import Command
from playbooks import PLAYBOOKS, ClusterHandle
from testbed.slack import Message
from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import CHANNEL, click, request, wait_ephemeral
from tests.e2e.test_alerts import send, webhook

REF = re.compile(r"ref ([0-9a-f]{4})")


def failure_record(caplog: pytest.LogCaptureFixture, ref: str) -> logging.LogRecord:
    records = [r for r in caplog.records if f"ref {ref}" in r.getMessage()]
    assert len(records) == 1, [r.getMessage() for r in caplog.records]
    assert records[0].exc_info is not None, "the log record carries the traceback"
    return records[0]


async def test_a_playbook_that_crashes_while_planning_is_told_to_the_requester_with_a_log_ref(
    testbed: Testbed,
    kubegate: Served,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def crash(command: Command, cluster: ClusterHandle) -> NoReturn:
        raise RuntimeError("node worker-1 came back without a status")

    monkeypatch.setattr(PLAYBOOKS["cordon"], "plan", crash)
    response = await testbed.slack.user("U0ALICE").slash("/kube cordon worker-1", channel=CHANNEL)
    assert response.status == 200

    told = await wait_ephemeral(testbed, "U0ALICE", "kubegate failed planning `cordon worker-1`")
    assert "RuntimeError: node worker-1 came back without a status" in told.shown
    assert "see kubegate's log" in told.shown and "Traceback" not in told.shown
    match = REF.search(told.shown)
    assert match is not None
    logged = failure_record(caplog, match.group(1)).getMessage()
    assert "U0ALICE" in logged and CHANNEL in logged and "cordon worker-1" in logged


async def test_a_read_only_answer_that_crashes_is_told_to_the_asker_with_a_log_ref(
    testbed: Testbed,
    kubegate: Served,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def crash(*args: object) -> NoReturn:
        raise KeyError("kubeletVersion")

    monkeypatch.setattr(bot.readonly, "node_line", crash)
    response = await testbed.slack.user("U0CAROL").slash("/kube nodes", channel=CHANNEL)
    assert response.status == 200

    told = await wait_ephemeral(testbed, "U0CAROL", "kubegate failed answering `nodes`")
    assert "KeyError" in told.shown
    match = REF.search(told.shown)
    assert match is not None
    logged = failure_record(caplog, match.group(1)).getMessage()
    assert "U0CAROL" in logged and "'nodes'" in logged


async def test_a_click_that_crashes_is_told_to_the_clicker_with_a_log_ref(
    testbed: Testbed,
    kubegate: Served,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-2")

    def crash(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError("the vote count is unreadable")

    monkeypatch.setattr(bot.actions, "tally", crash)
    await click(testbed, "U0BOB", root, "Approve")

    told = await wait_ephemeral(testbed, "U0BOB", "kubegate failed handling the approve click")
    assert "on job #1" in told.shown and "the vote count is unreadable" in told.shown
    match = REF.search(told.shown)
    assert match is not None
    logged = failure_record(caplog, match.group(1)).getMessage()
    assert "U0BOB" in logged and "kubegate.approve" in logged and "job #1" in logged


async def test_an_alert_that_cannot_be_shown_is_said_in_the_channel_with_a_log_ref(
    testbed: Testbed,
    kubegate: Served,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def crash(*args: object, **kwargs: object) -> NoReturn:
        raise ValueError("labels too odd to show")

    monkeypatch.setattr(bot.alerts, "alert_card", crash)
    assert await send(kubegate, webhook("firing"), testbed.alerts_token) == 200

    def said() -> Message | None:
        return next(
            (m for m in testbed.slack.messages(CHANNEL) if "failed showing an alert" in m.shown),
            None,
        )

    told = await testbed.slack.wait_for(said)
    assert "ValueError: labels too odd to show" in told.shown
    match = REF.search(told.shown)
    assert match is not None
    logged = failure_record(caplog, match.group(1)).getMessage()
    assert "NodeDiskPressure" in logged and "firing" in logged
