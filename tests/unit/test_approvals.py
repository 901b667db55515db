"""Policy decisions, separation of duties, tallies and drift: pure functions, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from approvals import (
    PolicyRule,
    Tally,
    Vote,
    approvals_needed,
    drift,
    may_request,
    may_vote,
    roles_of,
    rule_for,
    tally,
    within,
)

ROLES = {"sre": ["U0ALICE", "U0BOB"], "lead": ["U0CAROL", "S0LEADS"]}
RULES = [
    PolicyRule(
        verbs=["cordon"], clusters=["prod"], requesters=["lead"], approvals=2, approvers=["sre"]
    ),
    PolicyRule(
        verbs=["cordon", "drain"],
        requesters=["sre", "lead"],
        approvals=1,
        approvers=["sre", "lead"],
    ),
]


def test_roles_come_from_user_ids_and_user_groups() -> None:
    assert roles_of("U0ALICE", roles=ROLES, group_members={}) == {"sre"}
    assert roles_of("U0ERIN", roles=ROLES, group_members={"S0LEADS": ["U0ERIN"]}) == {"lead"}
    assert roles_of("U0MALLORY", roles=ROLES, group_members={"S0LEADS": ["U0ERIN"]}) == frozenset()


def test_the_first_rule_for_the_verb_and_cluster_applies() -> None:
    assert rule_for(RULES, verb="cordon", cluster="prod") is RULES[0]
    assert rule_for(RULES, verb="cordon", cluster="staging") is RULES[1]
    assert rule_for(RULES, verb="upgrade", cluster="staging") is None


def test_a_change_without_a_rule_is_refused_but_reading_is_allowed_to_any_role() -> None:
    refused = may_request(
        None, verb="upgrade", cluster="prod", requester_roles=frozenset({"sre"}), read_only=False
    )
    assert not refused.allowed and "No policy rule allows `upgrade`" in refused.reason
    reading = may_request(
        None, verb="nodes", cluster="prod", requester_roles=frozenset({"lead"}), read_only=True
    )
    assert reading.allowed


def test_reading_without_a_role_is_refused_unless_a_rule_opens_it_to_everyone() -> None:
    no_role = frozenset[str]()
    refused = may_request(
        None, verb="nodes", cluster="prod", requester_roles=no_role, read_only=True
    )
    assert not refused.allowed and "needs a kubegate role" in refused.reason
    opened = PolicyRule(verbs=["nodes", "pods", "status"], clusters=["prod"], requesters=["*"])
    reading = may_request(
        opened, verb="nodes", cluster="prod", requester_roles=no_role, read_only=True
    )
    assert reading.allowed


def test_a_requester_without_the_role_is_told_which_role_is_needed() -> None:
    decision = may_request(
        RULES[0], verb="cordon", cluster="prod", requester_roles=frozenset({"sre"}), read_only=False
    )
    assert not decision.allowed and "`lead`" in decision.reason


def test_requester_cannot_approve_own_request() -> None:
    decision = may_vote(
        RULES[1], voter="U0ALICE", voter_roles=frozenset({"sre"}), requester="U0ALICE"
    )
    assert not decision.allowed and "someone else must approve" in decision.reason


def test_a_voter_without_an_approver_role_is_refused() -> None:
    decision = may_vote(
        RULES[0], voter="U0CAROL", voter_roles=frozenset({"lead"}), requester="U0BOB"
    )
    assert not decision.allowed and "`sre`" in decision.reason


def test_quorum_counts_distinct_people_on_the_current_plan_only() -> None:
    votes = [Vote("U0BOB", True, "old"), Vote("U0BOB", True, "new")]
    assert tally(votes, needed=2, plan_digest="new") is Tally.PENDING
    votes.append(Vote("U0CAROL", True, "new"))
    assert tally(votes, needed=2, plan_digest="new") is Tally.APPROVED
    assert (
        tally([*votes, Vote("U0DAN", False, "new")], needed=2, plan_digest="new") is Tally.REJECTED
    )
    assert tally([Vote("U0DAN", False, "old")], needed=1, plan_digest="new") is Tally.PENDING


def test_windows_close_at_their_deadline() -> None:
    deadline = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert within(deadline, deadline)
    assert not within(deadline + timedelta(seconds=1), deadline)


def test_drift_names_what_changed_in_words() -> None:
    changes = drift(
        {"unschedulable": False, "node_exists": True}, {"unschedulable": True, "node_exists": True}
    )
    assert changes == ["unschedulable: was False, now True"]
    assert drift({"a": 1}, {"a": 1}) == []


def test_a_rule_without_approvals_takes_the_default_it_is_given() -> None:
    rule = PolicyRule(verbs=["upgrade"], requesters=["sre"], approvers=["lead"])
    assert approvals_needed(rule, default=2) == 2
    assert approvals_needed(RULES[0], default=5) == 2
    assert approvals_needed(None, default=0) == 0
