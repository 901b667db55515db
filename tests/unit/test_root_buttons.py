"""A request's message offers Approve and Reject only when votes count: a break-glass job, or
one policy lets run without approval, starts as soon as it is posted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.render import root_card
from bot.store import JobState, Store
from playbooks.plan import Plan


@pytest.mark.parametrize(
    ("approvals_needed", "break_glass", "offered"),
    [(1, None, ["Approve", "Reject"]), (0, None, []), (0, "INC-7 prod down", [])],
)
def test_approve_and_reject_are_offered_only_where_a_vote_counts(
    tmp_path: Path, approvals_needed: int, break_glass: str | None, offered: list[str]
) -> None:
    store = Store(tmp_path / "kubegate.db")
    now = datetime.now(UTC)
    plan = Plan(verb="cordon", cluster="prod", target="worker-2", title="Cordon worker-2", steps=[])
    job = store.create_job(
        cluster="prod",
        verb="cordon",
        target="worker-2",
        requester="U0CAROL",
        channel="C0OPS",
        command_text="cordon worker-2",
        state=JobState.PENDING_APPROVAL,
        plan=plan.model_dump(mode="json"),
        plan_digest=plan.digest,
        approvals_needed=approvals_needed,
        break_glass=break_glass,
        created_at=now,
        approval_deadline=now,
    )
    card = root_card(job, votes=[], steps=[], approver_roles=["sre"])
    assert [button.label for button in card.buttons] == offered
