"""Who may request a verb and who may approve it: policy rules and role membership.

Pure decisions over plain data; the bot resolves Slack user groups and passes them in, and hands
over what the grammar says of a verb (whether it only reads, its default approvals).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
SLACK_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
EVERYONE = "*"  # in `requesters:`: anyone in the workspace, role or not
_SHORT_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class PolicyRule(BaseModel):
    """One rule: for these verbs (and optionally clusters), who may ask and who must approve."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    verbs: list[str] = Field(min_length=1)
    clusters: list[str] | None = None
    requesters: list[str] = Field(min_length=1)
    # None: each verb's own default (the grammar's, handed in by the bot).
    approvals: int | None = Field(default=None, ge=0, le=10)
    approvers: list[str] = Field(default_factory=list)
    break_glass: list[str] = Field(default_factory=list)
    # For `silence`: the longest silence the rule allows ("30m", "1h"); None: the button's own.
    longest: timedelta | None = None

    @field_validator("longest", mode="before")
    @classmethod
    def _short_duration(cls, value: Any) -> Any:
        """ "30m", "2h", "1d" as in the rest of kubegate.yaml; other forms go to pydantic."""
        found = _SHORT_DURATION.match(value) if isinstance(value, str) else None
        if found is None:
            return value
        return timedelta(seconds=int(found[1]) * _UNIT_SECONDS[found[2]])

    def applies_to(self, *, verb: str, cluster: str) -> bool:
        return verb in self.verbs and (self.clusters is None or cluster in self.clusters)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def roles_of(
    user_id: str,
    *,
    roles: Mapping[str, Sequence[str]],
    group_members: Mapping[str, Iterable[str]],
) -> frozenset[str]:
    """The roles a Slack user holds, directly or through a Slack user group (`S…`)."""
    held = set()
    for role, members in roles.items():
        for member in members:
            if member == user_id or (
                SLACK_GROUP_ID.match(member) and user_id in set(group_members.get(member, ()))
            ):
                held.add(role)
                break
    return frozenset(held)


def rule_for(rules: Sequence[PolicyRule], *, verb: str, cluster: str) -> PolicyRule | None:
    """The first rule naming this verb for this cluster; rules are read top to bottom."""
    return next((rule for rule in rules if rule.applies_to(verb=verb, cluster=cluster)), None)


def may_request(
    rule: PolicyRule | None,
    *,
    verb: str,
    cluster: str,
    requester_roles: frozenset[str],
    read_only: bool,
) -> Decision:
    """`read_only`: the verb only reads; without a rule, any kubegate role may use it (a rule
    with `requesters: ["*"]` opens it to everyone, or narrows it to some roles)."""
    if rule is None:
        if read_only and requester_roles:
            return Decision(True)
        if read_only:
            return Decision(
                False,
                f"`{verb}` on cluster {cluster} needs a kubegate role: ask a kubegate admin "
                "for one, or for a policy rule that opens it.",
            )
        # Safe default: a change nobody wrote a rule for is not allowed at all.
        return Decision(
            False,
            f"No policy rule allows `{verb}` on cluster {cluster}. "
            "Ask a kubegate admin to add one to the policy.",
        )
    if EVERYONE in rule.requesters or requester_roles & set(rule.requesters):
        return Decision(True)
    return Decision(
        False,
        f"You may not request `{verb}` on {cluster}: it needs one of the roles "
        f"{_role_list(rule.requesters)}.",
    )


def approvals_needed(rule: PolicyRule | None, *, default: int) -> int:
    """The rule's `approvals:`; the verb's `default` when there is no rule or it does not say."""
    if rule is None or rule.approvals is None:
        return default
    return rule.approvals


def may_vote(
    rule: PolicyRule | None,
    *,
    voter: str,
    voter_roles: frozenset[str],
    requester: str,
) -> Decision:
    """Separation of duties: the requester never approves their own change."""
    if voter == requester:
        return Decision(
            False,
            "You requested this change, so your vote does not count: someone else must approve it.",
        )
    if rule is None or not (voter_roles & set(rule.approvers)):
        needed = _role_list(rule.approvers) if rule else "an approver role"
        return Decision(False, f"Only {needed} may vote on this request.")
    return Decision(True)


def may_break_glass(rule: PolicyRule | None, *, requester_roles: frozenset[str]) -> Decision:
    if rule is not None and requester_roles & set(rule.break_glass):
        return Decision(True)
    return Decision(
        False, "You may not use --break-glass for this verb: no role of yours allows it."
    )


def _role_list(roles: Sequence[str]) -> str:
    return " or ".join(f"`{role}`" for role in roles) or "(none)"
