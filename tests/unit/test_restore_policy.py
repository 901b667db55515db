"""`restore` runs only with break-glass or under a rule as strict as the policy's strictest:
a rule written for everyday changes can never be enough for disaster recovery."""

from __future__ import annotations

from approvals import PolicyRule
from bot.access import Access


async def no_group_members(group: str) -> set[str]:
    return set()


def rule(verbs: list[str], approvals: int) -> PolicyRule:
    return PolicyRule(verbs=verbs, requesters=["sre"], approvers=["sre"], approvals=approvals)


def access(*rules: PolicyRule) -> Access:
    return Access(roles={"sre": ["U0ALICE"]}, policy=rules, group_members=no_group_members)


def test_a_restore_rule_asking_fewer_approvals_than_the_strictest_is_refused() -> None:
    restore = rule(["restore"], 1)
    policy = access(rule(["cordon"], 1), rule(["upgrade"], 2), restore)
    decision = policy.strict_enough(restore, "restore")
    assert not decision.allowed
    assert "--break-glass" in decision.reason and "at least 2 approvals" in decision.reason


def test_a_restore_rule_as_strict_as_the_strictest_allows_it() -> None:
    restore = rule(["restore"], 2)
    policy = access(rule(["upgrade"], 2), restore)
    assert policy.strict_enough(restore, "restore").allowed


def test_other_verbs_are_not_held_to_the_strictest_rule() -> None:
    cordon = rule(["cordon"], 1)
    assert access(cordon, rule(["upgrade"], 3)).strict_enough(cordon, "cordon").allowed
