"""Approvals: policy, votes, windows, separation of duties and drift. Pure decisions, no I/O."""

from approvals.policy import (
    EVERYONE,
    SLACK_GROUP_ID,
    SLACK_USER_ID,
    Decision,
    PolicyRule,
    approvals_needed,
    may_break_glass,
    may_request,
    may_vote,
    roles_of,
    rule_for,
)
from approvals.votes import Tally, Vote, Windows, drift, tally, within
from approvals.windows import (
    WEEKDAYS,
    Freeze,
    MaintenanceWindow,
    RunTime,
    active_freeze,
    run_time,
)

__all__ = [
    "EVERYONE",
    "SLACK_GROUP_ID",
    "SLACK_USER_ID",
    "WEEKDAYS",
    "Decision",
    "Freeze",
    "MaintenanceWindow",
    "PolicyRule",
    "RunTime",
    "Tally",
    "Vote",
    "Windows",
    "active_freeze",
    "approvals_needed",
    "drift",
    "may_break_glass",
    "may_request",
    "may_vote",
    "roles_of",
    "rule_for",
    "run_time",
    "tally",
    "within",
]
