"""A chatty step: its output coalesced into one thread reply, the whole of it as a file."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest

from commands import Command
from playbooks import (
    PLAYBOOKS,
    ClusterHandle,
    Plan,
    PlannedStep,
    Playbook,
    Step,
    StepContext,
    StepParams,
    StepResult,
)
from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import CHANNEL, click, request, wait_text

LINES = 400


class ChattyParams(StepParams):
    step: Literal["chatty"] = "chatty"


class Chatty(Step[ChattyParams]):
    name: ClassVar[str] = "chatty"
    params_model: ClassVar[type[StepParams]] = ChattyParams

    async def run(self, ctx: StepContext) -> StepResult:
        output = [f"line {n} of {LINES}" for n in range(1, LINES + 1)]
        for line in output:
            await ctx.progress(line)
        return StepResult(ok=True, summary=f"{LINES} lines", output="\n".join(output))


class ChattyPlaybook(Playbook[Command]):
    verb: ClassVar[str] = "backup"
    command_type = Command

    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan:
        return Plan(
            verb="backup",
            cluster=cluster.name,
            target="etcd",
            title="Say a lot",
            steps=[PlannedStep.of(ChattyParams(), "Print 400 lines")],
        )


async def test_long_output_is_coalesced_into_one_reply_and_shared_as_a_file(
    testbed: Testbed, kubegate: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PLAYBOOKS, "backup", ChattyPlaybook())
    root = await request(testbed, "U0ALICE", "backup etcd")
    calls_before = sum(testbed.slack.calls.values())
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED")
    files = testbed.slack.files(CHANNEL, root.ts)
    assert len(files) == 1 and files[0].text.count("\n") == LINES - 1
    replies = testbed.slack.replies(CHANNEL, root.ts)
    step = next(r for r in replies if "Step 1/1" in r.shown)
    assert "line 400 of 400" in step.shown and "line 1 of 400" not in step.shown  # the tail only
    assert len(step.updates) <= 5
    assert sum(testbed.slack.calls.values()) - calls_before < 20  # whatever the output's length
