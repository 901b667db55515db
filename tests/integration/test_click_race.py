"""A click that lands before kubegate has stored the root message's ts is not lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.app import build
from bot.chat import APPROVE, Card
from bot.config import KubegateConfig, Settings
from bot.service import Kubegate
from testbed.up import Testbed


class ClickDuringPost:
    """Slack as seen under load: Bob clicks Approve before chat.postMessage has returned."""

    def __init__(self) -> None:
        self.kubegate: Kubegate | None = None
        self.messages: dict[str, list[Card]] = {}
        self.replies: list[Card] = []

    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str:
        if thread_ts is not None:
            self.replies.append(card)
            self.messages[f"reply-{len(self.replies)}"] = [card]
            return f"reply-{len(self.replies)}"
        ts = "root-1"
        self.messages[ts] = [card]
        approve = next(b for b in card.buttons if b.action_id == APPROVE)
        assert self.kubegate is not None
        await self.kubegate.click(
            user="U0BOB",
            channel=channel,
            action_id=APPROVE,
            value=approve.value,
            message_ts=ts,
        )
        return ts

    async def update(self, channel: str, ts: str, card: Card) -> None:
        self.messages[ts].append(card)

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        raise AssertionError(f"unexpected private answer to {user}: {text}")

    async def group_members(self, group_id: str) -> set[str]:
        return set()

    async def upload(self, channel: str, thread_ts: str, *, title: str, content: str) -> None:
        return None


async def test_an_approval_clicked_before_the_root_ts_is_stored_still_shows_and_runs(
    testbed: Testbed, tmp_path: Path
) -> None:
    chat = ClickDuringPost()
    settings = Settings.model_validate(
        {"KUBEGATE_CONFIG": str(testbed.config_path), "KUBEGATE_DB": str(tmp_path / "k.db")}
    )

    def make_chat(config: KubegateConfig) -> Any:
        return chat

    runtime = build(settings, chat=make_chat)
    chat.kubegate = runtime.kubegate
    try:
        answer = runtime.kubegate.receive_command(
            user="U0ALICE", channel="C0OPS", text="cordon worker-2"
        )
        assert answer.work is not None
        await answer.work
        await runtime.kubegate.idle()
    finally:
        await runtime.close()
    final = chat.messages["root-1"][-1]
    assert "SUCCEEDED" in final.headline and "approved by <@U0BOB>" in final.headline
    assert any("Step 1/1" in reply.headline for reply in chat.replies)
