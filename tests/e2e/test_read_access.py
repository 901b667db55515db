"""Reading needs a role: no-role users are refused `/kube audit`, `/kube jobs` and the cluster's
nodes unless a policy rule opens them, and each person sees the jobs and events of the clusters
the policy lets them read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.slack import Message
from testbed.up import Testbed
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import CHANNEL, audit_of, request

STAGING = "C0STAGING"


async def answer(testbed: Testbed, user: str, text: str, channel: str = CHANNEL) -> Message:
    """Type a read command and wait for its private answer (not the "Looking…" ack)."""
    before = len(testbed.slack.ephemerals(channel, user))
    await testbed.slack.user(user).slash(f"/kube {text}", channel=channel)

    def answered() -> Message | None:
        new = testbed.slack.ephemerals(channel, user)[before:]
        return next((m for m in new if m.via != "ack"), None)

    return await testbed.slack.wait_for(answered, timeout=10)


async def test_a_user_without_a_role_is_refused_the_audit_the_jobs_and_the_nodes(
    testbed: Testbed, kubegate: Served
) -> None:
    await request(testbed, "U0ALICE", "cordon worker-1")
    for verb in ("audit", "jobs", "nodes", "job 1"):
        refused = await answer(testbed, "U0DAVE", verb)
        assert "needs a kubegate role" in refused.shown and "cordon" not in refused.shown
    refusals = list(audit_of(kubegate.db).events(action="refusal", actor="U0DAVE"))
    assert [e["details"]["verb"] for e in refusals] == ["audit", "jobs", "nodes", "job"]
    jobs = await answer(testbed, "U0ALICE", "jobs")
    assert "#1" in jobs.shown and "cordon worker-1" in jobs.shown


@pytest.mark.parametrize(
    "config_changes",
    [{"policy": [{"verbs": ["nodes", "pods", "status"], "requesters": ["*"]}]}],
)
async def test_a_rule_for_everyone_opens_the_nodes_but_not_the_audit(
    testbed: Testbed, kubegate: Served
) -> None:
    nodes = await answer(testbed, "U0DAVE", "nodes")
    assert "worker-1" in nodes.shown
    refused = await answer(testbed, "U0DAVE", "audit")
    assert "needs a kubegate role" in refused.shown


def staging_for_leads(testbed: Testbed) -> dict[str, Any]:
    config = yaml.safe_load(testbed.config_path.read_text())
    ours = config["clusters"][0]
    config["clusters"] = [ours, {**ours, "name": "staging", "channels": [STAGING]}]
    # Only leads read staging's jobs and events; every role reads testbed's (no rule: default).
    only_leads = {
        "verbs": ["audit", "jobs", "job"],
        "clusters": ["staging"],
        "requesters": ["lead"],
    }
    config["policy"] = [only_leads, *config["policy"]]
    return config


async def test_jobs_and_audit_show_only_the_clusters_a_person_may_read(
    testbed: Testbed, tmp_path: Path
) -> None:
    async with serving(testbed, tmp_path, staging_for_leads(testbed)):
        await request(testbed, "U0ALICE", "cordon worker-1")
        await testbed.slack.user("U0CAROL").slash("/kube cordon worker-2", channel=STAGING)
        await testbed.slack.wait_for(lambda: next(iter(testbed.slack.messages(STAGING)), None))

        alice_jobs = await answer(testbed, "U0ALICE", "jobs")
        assert "worker-1 · testbed" in alice_jobs.shown and "worker-2" not in alice_jobs.shown
        alice_audit = await answer(testbed, "U0ALICE", "audit")
        assert "testbed" in alice_audit.shown and "staging" not in alice_audit.shown
        hidden = await answer(testbed, "U0ALICE", "job 2")
        assert "There is no job #2 you may read" in hidden.shown

        carol_jobs = await answer(testbed, "U0CAROL", "jobs")
        assert "worker-1 · testbed" in carol_jobs.shown and "worker-2 · staging" in carol_jobs.shown
        carol_audit = await answer(testbed, "U0CAROL", "audit")
        assert "staging" in carol_audit.shown
