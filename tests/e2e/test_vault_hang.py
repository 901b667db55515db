"""A Vault that takes requests and answers none (`python -m testbed fault vault-hang`): the step
that needs it halts with a sentence saying so once Vault's request timeout is up, instead of
waiting for ever; kubegate goes on answering meanwhile, and [Retry step] finishes the job once
Vault answers again."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import yaml

from testbed.up import Testbed
from tests.e2e.conftest import serving
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    request,
    wait_ephemeral,
    wait_reply,
    wait_text,
)


async def fault(testbed: Testbed, *args: str) -> str:
    """`python -m testbed fault --dir DIR ...` as an operator types it; what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "testbed",
        "fault",
        "--dir",
        str(testbed.directory),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_a_hanging_vault_halts_the_step_with_a_sentence_and_retry_finishes_the_job(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    testbed = full_testbed
    config = yaml.safe_load(testbed.config_path.read_text())
    config["clusters"][0]["inventory"]["ssh"]["sign_with_vault"] = True
    async with serving(testbed, tmp_path, config):
        assert "Vault hangs" in await fault(testbed, "vault-hang")
        root = await request(testbed, "U0ALICE", "backup etcd")
        await click(testbed, "U0BOB", root, "Approve")

        # While the step waits on Vault, other people's commands are answered.
        await testbed.slack.user("U0CAROL").slash("/kube nodes", channel=CHANNEL)
        await wait_ephemeral(testbed, "U0CAROL", "worker-3")

        halted = await wait_reply(testbed, root, "halted", timeout=60)
        assert "Vault did not answer within 10 s" in halted.shown
        assert "signing kubegate's SSH key" in halted.shown and "step 1" in halted.shown

        assert "answers again" in await fault(testbed, "vault-hang-clear")
        await click(testbed, "U0ALICE", halted, "Retry step")
        await wait_text(testbed, root.ts, "SUCCEEDED", timeout=30)
