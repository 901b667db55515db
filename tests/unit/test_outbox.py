"""The outbox: what a job says is stored first and reaches Slack later, in order, once."""

from __future__ import annotations

import time
from pathlib import Path

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.chat import Card
from bot.outbox import OutboxChat, OutboxRows
from bot.outbox_delivery import OutboxDelivery, retry_after
from bot.store import Store
from tests.fakes.chat import RecordingChat

LATER = 3600.0  # past any backoff: "after Slack recovered", without waiting for it


def slack_error(status: int, headers: dict[str, str] | None = None) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="http://slack.invalid/api/chat.postMessage",
        req_args={},
        data={"ok": False, "error": "ratelimited"} if status == 429 else {},
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError("The request to the Slack API failed.", response)


class FlakySlack(RecordingChat):
    """Slack answering 500 until told to recover."""

    down = True

    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str:
        if self.down:
            raise slack_error(500)
        return await super().post(channel, card, thread_ts=thread_ts)

    async def update(self, channel: str, ts: str, card: Card) -> None:
        if self.down:
            raise slack_error(500)
        await super().update(channel, ts, card)


def outbox(db: Path, slack: RecordingChat) -> tuple[Store, OutboxChat, OutboxDelivery]:
    store = Store(db)
    rows = OutboxRows(store)
    return store, OutboxChat(rows, slack), OutboxDelivery(rows, slack)


async def test_a_job_says_its_steps_at_once_while_slack_fails_and_they_arrive_in_order_after(
    tmp_path: Path,
) -> None:
    slack = FlakySlack()
    store, chat, delivery = outbox(tmp_path / "kubegate.db", slack)
    first = await chat.post("C1", Card("Step 1/2 running"), thread_ts="100.1")
    await chat.update("C1", first, Card("Step 1/2 done"))
    await chat.post("C1", Card("Step 2/2 done"), thread_ts="100.1")
    assert await delivery.deliver_due() == 0 and slack.posts == []

    slack.down = False
    while await delivery.deliver_due(now=time.time() + LATER):
        pass
    assert [card.headline for _, card, _ in slack.posts] == ["Step 1/2 running", "Step 2/2 done"]
    assert [card.headline for card in slack.updates.values()] == ["Step 1/2 done"]
    store.close()


async def test_only_the_newest_content_of_a_message_is_sent(tmp_path: Path) -> None:
    slack = RecordingChat()
    store, chat, delivery = outbox(tmp_path / "kubegate.db", slack)
    for n in range(5):
        await chat.update("C1", "100.1", Card(f"progress {n}"))
    assert await delivery.deliver_due() == 1
    assert slack.updates == {"100.1": Card("progress 4")}
    assert await delivery.deliver_due() == 0
    store.close()


async def test_what_was_not_sent_before_a_restart_is_sent_after_it(tmp_path: Path) -> None:
    db = tmp_path / "kubegate.db"
    store, chat, _ = outbox(db, FlakySlack())
    await chat.post("C1", Card("Job #1 halted"), thread_ts="100.1")
    store.close()

    slack = RecordingChat()
    store, _, delivery = outbox(db, slack)
    assert await delivery.deliver_due() == 1
    assert [(card.headline, ts) for _, card, ts in slack.posts] == [("Job #1 halted", "100.1")]
    store.close()


def test_a_rate_limit_waits_as_long_as_slack_asks_and_a_500_backs_off() -> None:
    assert retry_after(slack_error(429, {"Retry-After": "7"}), attempts=0) == 7
    first, later = retry_after(slack_error(500), 0), retry_after(slack_error(503), 6)
    assert first is not None and later is not None and first < later <= 36


def test_a_message_slack_refuses_for_good_is_given_up() -> None:
    refused = SlackApiError(
        "channel_not_found",
        AsyncSlackResponse(
            client=None,
            http_verb="POST",
            api_url="http://slack.invalid/api/chat.postMessage",
            req_args={},
            data={"ok": False, "error": "channel_not_found"},
            headers={},
            status_code=200,
        ),
    )
    assert retry_after(refused, attempts=0) is None


async def test_a_message_a_killed_kubegate_was_sending_is_sent_by_the_next_at_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "kubegate.db"
    store, chat, killed = outbox(db, RecordingChat())
    await chat.update("C1", "100.1", Card("SCHEDULED"))
    rows = OutboxRows(store)
    assert rows.due(now=time.time(), owner=killed.owner)  # claimed, then the process died
    store.close()

    slack = RecordingChat()
    store, chat, delivery = outbox(db, slack)
    await chat.update("C1", "100.1", Card("SUCCEEDED"))
    delivery.start()
    await delivery.stop(flush_for=5)
    assert slack.updates == {"100.1": Card("SUCCEEDED")}
    store.close()
