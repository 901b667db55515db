"""Counting votes: quorum, rejection, and the two clocks (approval and execution windows)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Tally(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Vote:
    voter: str
    approve: bool
    plan_digest: str


@dataclass(frozen=True)
class Windows:
    approval: timedelta = timedelta(minutes=30)
    execution: timedelta = timedelta(hours=2)


def tally(votes: Sequence[Vote], *, needed: int, plan_digest: str) -> Tally:
    """Votes count only for the plan they were cast on, and each person once."""
    current = [vote for vote in votes if vote.plan_digest == plan_digest]
    if any(not vote.approve for vote in current):
        return Tally.REJECTED
    approvers = {vote.voter for vote in current if vote.approve}
    return Tally.APPROVED if len(approvers) >= needed else Tally.PENDING


def within(now: datetime, deadline: datetime) -> bool:
    return now <= deadline


def drift(approved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What changed, in words, between the facts approvers saw and the live ones.

    Facts are the risk-bearing observations a plan was built on (a node exists, is schedulable,
    its kubelet version, pods needing --force…); never volatile fields like resourceVersion.
    """
    changes = []
    for key in sorted(set(approved) | set(current)):
        before, after = approved.get(key), current.get(key)
        if before != after:
            changes.append(f"{key}: was {_shown(before)}, now {_shown(after)}")
    return changes


def _shown(value: Any) -> str:
    return "absent" if value is None else str(value)
