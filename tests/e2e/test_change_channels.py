"""Changes live in their cluster's own channels, and a click counts only on its job's own
message: a request from elsewhere is refused, a forged or misplaced click does nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.chat import ABORT, APPROVE
from testbed.slack import Message
from testbed.up import Testbed
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import CHANNEL, audit_of
from tests.e2e.test_alerts import send, webhook

PROD = "C0PROD"


def with_prod(testbed: Testbed) -> dict[str, Any]:
    config = yaml.safe_load(testbed.config_path.read_text())
    ours = config["clusters"][0]
    # Same API behind both names: what differs is where each cluster's changes may happen.
    return {"clusters": [ours, {**ours, "name": "prod", "channels": [PROD]}]}


@pytest.fixture
async def two_clusters(testbed: Testbed, tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(testbed, tmp_path, with_prod(testbed)) as served:
        yield served


async def private_answer(
    testbed: Testbed, channel: str, user: str, needle: str, *, after: int = 0
) -> Message:
    """The first private message to `user` saying `needle`, among those after the `after`th."""

    def found() -> Message | None:
        mine = testbed.slack.ephemerals(channel, user)[after:]
        return next((m for m in mine if needle in m.shown), None)

    return await testbed.slack.wait_for(found, timeout=10)


def refusals(served: Served) -> list[dict[str, Any]]:
    return list(audit_of(served.db).events(action="refusal"))


async def prod_root(testbed: Testbed, text: str) -> Message:
    await testbed.slack.user("U0ALICE").slash(f"/kube {text}", channel=PROD)
    return await testbed.slack.wait_for(
        lambda: next((m for m in testbed.slack.messages(PROD) if "job #" in m.shown), None)
    )


async def test_a_change_for_prod_from_another_channel_or_a_dm_is_refused_with_where_to_ask(
    testbed: Testbed, two_clusters: Served
) -> None:
    alice = testbed.slack.user("U0ALICE")
    for channel in (CHANNEL, "D0ALICE"):
        await alice.slash("/kube cordon worker-1 -c prod", channel=channel)
        answer = await private_answer(testbed, channel, "U0ALICE", "Changes to cluster prod")
        assert f"requested in <#{PROD}>: ask there" in answer.shown
    assert not [m for m in testbed.slack.messages(CHANNEL) if "job #" in m.shown]
    assert testbed.slack.messages("D0ALICE") == [] and testbed.slack.messages(PROD) == []
    assert [e["details"]["channel"] for e in refusals(two_clusters)] == [CHANNEL, "D0ALICE"]

    root = await prod_root(testbed, "cordon worker-1 -c prod")  # from prod's own channel: fine
    assert "cluster prod" in root.shown and "[Approve]" in root.shown
    await alice.slash("/kube cancel 1", channel=CHANNEL)  # its control, too, happens in prod's
    await private_answer(testbed, CHANNEL, "U0ALICE", f"Job #1 belongs to <#{PROD}>")


async def test_forged_or_misplaced_clicks_do_nothing_but_a_private_refusal_and_an_audit_entry(
    testbed: Testbed, two_clusters: Served
) -> None:
    root = await prod_root(testbed, "cordon worker-1")
    real = next(
        e["value"]
        for b in root.blocks
        for e in b.get("elements", [])
        if e.get("action_id") == APPROVE
    )
    job_id, digest, nonce = real.split(":")
    assert len(nonce) >= 16  # a random nonce, not the guessable job id
    elsewhere = await prod_root_sibling(testbed)
    bob = testbed.slack.user("U0BOB")
    forged = [
        (root.ts, APPROVE, f"999:{digest}:{nonce}", "That job no longer exists"),  # forged id
        (root.ts, APPROVE, f"{job_id}:{digest}:guessed", "not on job #1's own message"),
        (root.ts, APPROVE, f"{job_id}:{digest}", "not on job #1's own message"),  # no nonce
        (elsewhere.ts, APPROVE, real, "not on job #1's own message"),  # another job's message
        (elsewhere.ts, ABORT, f"{job_id}::{nonce}", "not on job #1's own message"),
    ]
    for ts, action, value, said in forged:
        before = len(testbed.slack.ephemerals(PROD, "U0BOB"))
        response = await bob.click_action(
            channel=PROD, message_ts=ts, action_id=action, value=value
        )
        assert response.status == 200
        await private_answer(testbed, PROD, "U0BOB", said, after=before)
    other_channel = testbed.slack.messages(CHANNEL)[0]  # a message in another channel
    await bob.click_action(
        channel=CHANNEL, message_ts=other_channel.ts, action_id=APPROVE, value=real
    )
    await private_answer(testbed, CHANNEL, "U0BOB", "not on job #1's own message")

    assert len(refusals(two_clusters)) == 6
    await wait_text_in(testbed, PROD, root.ts, "Needs 1 more approval")  # still unapproved
    assert list(audit_of(two_clusters.db).events(action="vote")) == []

    await bob.click(channel=PROD, message_ts=root.ts, label="Approve")  # the real one counts
    await wait_text_in(testbed, PROD, root.ts, "SUCCEEDED")


async def prod_root_sibling(testbed: Testbed) -> Message:
    """A second message in prod's channel that is not job #1's root: job #2's, and one in
    C0OPS for the wrong-channel click."""
    await testbed.slack.user("U0ALICE").slash("/kube cordon worker-2", channel=PROD)
    await testbed.slack.user("U0ALICE").slash("/kube cordon worker-3", channel=CHANNEL)
    await testbed.slack.wait_for(lambda: next(iter(testbed.slack.messages(CHANNEL)), None))
    return await testbed.slack.wait_for(
        lambda: (
            next((m for m in testbed.slack.messages(PROD) if "job #2" in m.shown), None)
            or next((m for m in testbed.slack.messages(PROD) if "job #3" in m.shown), None)
        )
    )


async def wait_text_in(testbed: Testbed, channel: str, ts: str, needle: str) -> Message:
    def current() -> Message | None:
        message = testbed.slack.message(channel, ts)
        return message if message and needle in message.shown else None

    return await testbed.slack.wait_for(current, timeout=10)


async def test_a_cordon_click_on_an_alert_in_the_alerts_channel_is_requested_in_the_clusters(
    testbed: Testbed, tmp_path: Path
) -> None:
    alerts = {"channel": "C0ALERTS", "token": testbed.alerts_token}
    async with serving(testbed, tmp_path, {"alerts": alerts}) as served:
        assert await send(served, webhook("firing"), testbed.alerts_token) == 200
        alert = await testbed.slack.wait_for(
            lambda: next(iter(testbed.slack.messages("C0ALERTS")), None)
        )
        await testbed.slack.user("U0ALICE").click(
            channel="C0ALERTS", message_ts=alert.ts, label="Cordon worker-2"
        )
        said = await private_answer(testbed, "C0ALERTS", "U0ALICE", "Planning")
        assert f"in <#{CHANNEL}>, where testbed's changes are approved" in said.shown
        root = await testbed.slack.wait_for(
            lambda: next((m for m in testbed.slack.messages(CHANNEL) if "job #" in m.shown), None)
        )
        assert "Cordon worker-2" in root.shown and "requested by <@U0ALICE>" in root.shown
