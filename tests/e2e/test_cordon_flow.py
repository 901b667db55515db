"""`/kube cordon worker-2` end to end: signed Slack requests in, a cordoned node out."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import (
    CHANNEL,
    audit_of,
    click,
    kubectl,
    kubegate_cli,
    request,
    root_messages,
    unschedulable,
    wait_ephemeral,
    wait_reply,
    wait_text,
)


async def test_cordon_is_planned_approved_by_another_person_run_and_audited(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-2")
    assert "Cordon worker-2" in root.shown and "<@U0ALICE>" in root.shown
    assert "Needs 1 more approval" in root.shown and "[Approve]" in root.shown

    await click(testbed, "U0ALICE", root, "Approve")
    await wait_ephemeral(testbed, "U0ALICE", "your vote does not count")
    assert await unschedulable(testbed, "worker-2") != "true"

    await click(testbed, "U0BOB", root, "Approve")
    done = await wait_text(testbed, root.ts, "SUCCEEDED")
    assert "Approved by <@U0BOB>" in done.shown and "[Approve]" not in done.shown
    assert await unschedulable(testbed, "worker-2") == "true"
    replies = testbed.slack.replies(CHANNEL, root.ts)
    assert len(replies) == 1 and "Step 1/1" in replies[0].shown and "✅" in replies[0].shown

    actions = [event["action"] for event in audit_of(kubegate.db).events()]
    assert actions.count("refusal") == 1 and "vote" in actions and "step.finish" in actions
    result = kubegate_cli(kubegate.db, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit chain OK" in result.stdout


async def test_a_reject_ends_the_request_and_nothing_runs(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-1")
    await click(testbed, "U0CAROL", root, "Reject")
    ended = await wait_text(testbed, root.ts, "REJECTED")
    assert "Rejected by <@U0CAROL>" in ended.shown and "[Approve]" not in ended.shown
    first_version = root.versions[0].blocks  # a stale copy of the message, still showing buttons
    approve = first_version[-1]["elements"][0]
    await testbed.slack.user("U0BOB").click_action(
        channel=CHANNEL, message_ts=root.ts, action_id=approve["action_id"], value=approve["value"]
    )
    await wait_ephemeral(testbed, "U0BOB", "already rejected")
    assert await unschedulable(testbed, "worker-1") != "true"


async def test_someone_without_an_approver_role_cannot_approve(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-1")
    await click(testbed, "U0DAVE", root, "Approve")
    await wait_ephemeral(testbed, "U0DAVE", "Only `sre` or `lead` may vote")
    assert "Needs 1 more approval" in testbed.slack.message(CHANNEL, root.ts).shown  # type: ignore[union-attr]


async def test_a_double_click_and_a_slack_retry_run_the_job_once(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-3")
    await asyncio.gather(
        click(testbed, "U0BOB", root, "Approve"), click(testbed, "U0BOB", root, "Approve")
    )
    retry = testbed.slack.last_request
    assert retry is not None
    await testbed.slack.replay(retry.as_retry(retry_num=1))
    await wait_text(testbed, root.ts, "SUCCEEDED")
    await testbed.slack.replay(retry.as_retry(retry_num=2))
    await wait_ephemeral(testbed, "U0BOB", "already succeeded")
    events = list(audit_of(kubegate.db).events(job_id=1))
    assert [e["action"] for e in events].count("step.start") == 1
    assert [e["action"] for e in events].count("vote") == 1


@pytest.mark.parametrize("config_changes", [{"windows": {"approval": "1s", "execution": "2h"}}])
async def test_a_vote_after_the_approval_window_is_refused(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-2")
    await asyncio.sleep(1.2)  # the window itself is what is under test
    await click(testbed, "U0BOB", root, "Approve")
    await wait_ephemeral(testbed, "U0BOB", "approval window of job #1 closed")
    await wait_text(testbed, root.ts, "EXPIRED")
    assert await unschedulable(testbed, "worker-2") != "true"
    assert "expiry" in [e["action"] for e in audit_of(kubegate.db).events()]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("cordon no-such-node", "There is no node `no-such-node`"),
        ("cordon 'a;rm -rf /'", "is not a valid node name"),
        ("frobnicate", "/kube help"),
    ],
)
async def test_bad_commands_get_a_private_answer_and_store_no_job(
    testbed: Testbed, kubegate: Served, text: str, answer: str
) -> None:
    response = await testbed.slack.user("U0ALICE").slash(f"/kube {text}", channel=CHANNEL)
    assert response.status == 200
    await wait_ephemeral(testbed, "U0ALICE", answer)
    assert testbed.slack.messages(CHANNEL) == []
    assert kubegate_cli(kubegate.db, "audit", "export").stdout.count('"action": "request"') == 0


async def test_forged_or_stale_requests_get_401_and_leave_no_trace(
    testbed: Testbed, kubegate: Served
) -> None:
    alice = testbed.slack.user("U0ALICE")
    forged = await alice.slash(
        "/kube cordon worker-2", channel=CHANNEL, signing_secret="not-the-secret"
    )
    stale = await alice.slash(
        "/kube cordon worker-2", channel=CHANNEL, timestamp=int(time.time()) - 600
    )
    assert (forged.status, stale.status) == (401, 401)
    await asyncio.sleep(0.3)  # nothing may appear; give it the chance to
    assert testbed.slack.messages(CHANNEL) == [] and testbed.slack.ephemerals(CHANNEL) == []
    exported = [
        json.loads(line)
        for line in kubegate_cli(kubegate.db, "audit", "export").stdout.splitlines()
    ]
    assert [e["action"] for e in exported] == ["config.loaded"]


async def test_a_failure_halts_the_job_with_retry_and_abort_and_retry_finishes_it(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-1")
    testbed.apiserver.fail_all_with_500 = True
    await click(testbed, "U0BOB", root, "Approve")
    halted = await wait_reply(testbed, root, "halted")
    assert (
        "answered 500" in halted.shown
        and "[Retry step]" in halted.shown
        and "[Abort]" in halted.shown
    )
    await wait_text(testbed, root.ts, "FAILED")
    assert await asyncio.to_thread(lambda: testbed.apiserver.stats()["unschedulable_nodes"]) == 0

    testbed.apiserver.fail_all_with_500 = False
    await click(testbed, "U0ALICE", halted, "Retry step")
    await wait_text(testbed, root.ts, "SUCCEEDED")
    assert await unschedulable(testbed, "worker-1") == "true"


async def test_cordoning_a_cordoned_node_is_reported_not_repeated(
    testbed: Testbed, kubegate: Served
) -> None:
    await asyncio.to_thread(kubectl, testbed, "cordon", "worker-3")
    await testbed.slack.user("U0ALICE").slash("/kube cordon worker-3", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "worker-3 is already cordoned; nothing to do")
    assert root_messages(testbed) == []


async def test_dry_run_shows_the_plan_and_changes_nothing(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.slack.user("U0ALICE").slash("/kube cordon worker-2 --dry-run", channel=CHANNEL)
    answer = await wait_ephemeral(testbed, "U0ALICE", "Dry run")
    assert "Cordon worker-2 (schedulable now)" in answer.shown
    assert root_messages(testbed) == []
    assert await unschedulable(testbed, "worker-2") != "true"


async def test_a_second_request_for_a_locked_node_is_refused_naming_the_holder(
    testbed: Testbed, kubegate: Served
) -> None:
    await request(testbed, "U0ALICE", "cordon worker-1")
    await testbed.slack.user("U0BOB").slash("/kube drain worker-1 --dry-run", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0BOB", "Dry run")  # a dry run locks nothing and is not refused
    await testbed.slack.user("U0BOB").slash("/kube uncordon worker-1", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0BOB", "worker-1 is already schedulable")
    await testbed.slack.user("U0BOB").slash("/kube drain worker-1", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0BOB", "worker-1 is locked by job #1")


async def test_the_requester_can_cancel_a_pending_request_and_others_cannot(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-2")
    await testbed.slack.user("U0DAVE").slash("/kube cancel 1", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0DAVE", "Only the requester or an approver of job #1")
    await testbed.slack.user("U0ALICE").slash("/kube cancel #1", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "Job #1 cancelled; it never ran")
    cancelled = await wait_text(testbed, root.ts, "CANCELLED")
    assert "[Approve]" not in cancelled.shown
    assert await unschedulable(testbed, "worker-2") != "true"
    await request(testbed, "U0BOB", "cordon worker-2")  # the lock went with the job


async def test_break_glass_runs_without_approval_loudly_and_leaves_a_review_for_someone_else(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.slack.user("U0ALICE").slash(
        '/kube cordon worker-1 --break-glass "site down"', channel=CHANNEL
    )
    await wait_ephemeral(testbed, "U0ALICE", "You may not use --break-glass")
    assert root_messages(testbed) == []

    root = await request(
        testbed, "U0CAROL", 'cordon worker-1 --break-glass "payments down, INC-42"'
    )
    done = await wait_text(testbed, root.ts, "SUCCEEDED")
    assert "🚨 BREAK-GLASS" in done.shown and "<!here>" in done.shown and "INC-42" in done.shown
    assert "review by sre or lead pending" in done.shown
    assert await unschedulable(testbed, "worker-1") == "true"
    review = await wait_reply(testbed, root, "Review needed")
    await click(testbed, "U0CAROL", review, "Acknowledge review")
    await wait_ephemeral(testbed, "U0CAROL", "someone else must review it")
    await click(testbed, "U0DAVE", review, "Acknowledge review")
    await wait_ephemeral(testbed, "U0DAVE", "Only `sre` or `lead` may acknowledge")
    await click(testbed, "U0BOB", review, "Acknowledge review")
    await wait_text(testbed, root.ts, "reviewed by <@U0BOB>")
    events = [e["action"] for e in audit_of(kubegate.db).events(job_id=1)]
    assert "break-glass" in events and "break-glass.reviewed" in events and "vote" not in events


@pytest.mark.parametrize(
    "config_changes",
    [
        {
            "freezes": [
                {
                    "name": "year-end",
                    "start": "2026-01-01T00:00:00Z",
                    "end": "2099-01-01T00:00:00Z",
                    "reason": "holiday trading",
                }
            ]
        }
    ],
)
async def test_a_change_freeze_stops_requests_but_not_break_glass(
    testbed: Testbed, kubegate: Served
) -> None:
    await testbed.slack.user("U0ALICE").slash("/kube cordon worker-2", channel=CHANNEL)
    refusal = await wait_ephemeral(testbed, "U0ALICE", "Change freeze `year-end`")
    assert "holiday trading" in refusal.shown and "--break-glass" in refusal.shown
    await testbed.slack.user("U0ALICE").slash("/kube nodes", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "worker-2")  # reading is never frozen
    root = await request(testbed, "U0CAROL", 'cordon worker-2 --break-glass "disk failing"')
    await wait_text(testbed, root.ts, "SUCCEEDED")


async def test_slack_rate_limits_are_waited_out_and_nothing_is_lost(
    testbed: Testbed, kubegate: Served
) -> None:
    root = await request(testbed, "U0ALICE", "cordon worker-3")
    testbed.slack.rate_limit("chat.update", 2, retry_after=1)
    testbed.slack.rate_limit("chat.postMessage", 1, retry_after=1)
    await click(testbed, "U0BOB", root, "Approve")
    done = await wait_text(testbed, root.ts, "SUCCEEDED", timeout=20)
    assert "approved by <@U0BOB>" in done.shown
    replies = testbed.slack.replies(CHANNEL, root.ts)
    assert len(replies) == 1 and "✅" in replies[0].shown


@pytest.mark.parametrize(
    "config_changes",
    [
        {
            "roles": {"sre": ["U0ALICE"], "oncall": ["S0ONCALL"]},
            "policy": [
                {
                    "verbs": ["cordon"],
                    "requesters": ["sre"],
                    "approvals": 1,
                    "approvers": ["oncall"],
                }
            ],
        }
    ],
)
async def test_a_role_given_through_a_slack_user_group_lets_its_members_approve(
    testbed: Testbed, kubegate: Served
) -> None:
    testbed.slack.usergroups["S0ONCALL"] = ["U0DAVE"]
    root = await request(testbed, "U0ALICE", "cordon worker-1")
    await click(testbed, "U0BOB", root, "Approve")  # not in the group any more: refused
    await wait_ephemeral(testbed, "U0BOB", "Only `oncall` may vote")
    await click(testbed, "U0DAVE", root, "Approve")
    done = await wait_text(testbed, root.ts, "SUCCEEDED")
    assert "approved by <@U0DAVE>" in done.shown
    assert testbed.slack.calls["usergroups.users.list"] >= 1
