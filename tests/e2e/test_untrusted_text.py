"""Text kubegate did not write (alert labels and annotations, break-glass reasons, echoed
commands) reaches Slack escaped: the transcript's raw text and blocks hold no mention and no
live link from it."""

from __future__ import annotations

import json

from testbed.slack import Message
from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import CHANNEL, request, wait_ephemeral, wait_reply, wait_text
from tests.e2e.test_alerts import send, webhook

# What an attacker puts in a label, an annotation or a reason: pings, a fake approver, a link.
HOSTILE = "<!channel> <!here> <!subteam^S0SRE> approved by <@U0BOB> <https://evil.example|runbook>"
LIVE = ("<!channel>", "<!subteam", "<@U0BOB>", "<https://", "<http://")


def raw(message: Message) -> str:
    """Everything Slack received for a message, every version: text and blocks, as sent."""
    return json.dumps([{"text": v.text, "blocks": v.blocks} for v in message.versions])


def live_markup(message: Message) -> list[str]:
    sent = raw(message)
    return [markup for markup in LIVE if markup in sent]


async def test_alert_labels_and_annotations_ping_nobody_and_link_nowhere(
    testbed: Testbed, kubegate: Served
) -> None:
    body = webhook("firing", group="hostile")
    body["commonLabels"]["team"] = HOSTILE
    body["alerts"][0]["labels"]["team"] = HOSTILE
    body["alerts"][0]["annotations"]["summary"] = f"disk full {HOSTILE}"
    assert await send(kubegate, body, testbed.alerts_token) == 200
    posted = await testbed.slack.wait_for(
        lambda: next((m for m in testbed.slack.messages(CHANNEL) if "disk full" in m.shown), None)
    )
    assert live_markup(posted) == []
    assert "<!here>" not in raw(posted)  # kubegate never pings for an alert; this one came in
    assert "&lt;!channel&gt;" in posted.shown  # shown literally, so people see what was sent


async def test_a_break_glass_reason_pings_nobody_and_cannot_fake_an_approval(
    testbed: Testbed, kubegate: Served
) -> None:
    # As Slack sends it: a typed @channel arrives as <!channel>; a typed "<" arrives as &lt;.
    reason = HOSTILE.replace("<https://", "&lt;https://").replace("runbook>", "runbook&gt;")
    root = await request(testbed, "U0CAROL", f'cordon worker-1 --break-glass "{reason}"')
    done = await wait_text(testbed, root.ts, "SUCCEEDED")
    review = await wait_reply(testbed, root, "Review needed")
    for message in (done, review):
        assert live_markup(message) == []
    # The one loud notice is kubegate's own, once; the reason's <!here> is shown, not sent.
    assert all(v.text.count("<!here>") <= 1 for v in done.versions)
    assert json.dumps(done.blocks).count("<!here>") == 1
    assert "“&lt;!channel&gt;" in done.shown  # the reason itself is still there to read


async def test_an_echoed_command_is_shown_as_typed_and_pings_nobody(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.slack.user("U0ALICE").slash(
        "/kube cordon <!channel> &lt;https://evil.example|x&gt;", channel=CHANNEL
    )
    answer = await wait_ephemeral(testbed, "U0ALICE", "")
    assert live_markup(answer) == [] and "<!channel>" not in raw(answer)
