"""What counts as Slack refusing kubegate's messages: its own failures, not one call refused."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.slack_health import SlackHealth


def slack_error(status: int, error: str) -> SlackApiError:
    response = AsyncSlackResponse(
        client=AsyncWebClient(token="xoxb-test"),
        http_verb="POST",
        api_url="https://slack.example/api/chat.postMessage",
        req_args={},
        data={"ok": False, "error": error},
        headers={},
        status_code=status,
    )
    return SlackApiError(error, response)


def test_a_500_a_429_and_no_answer_are_slack_failing_and_an_answer_ends_it() -> None:
    health = SlackHealth()
    assert health.note() is None
    health.failed(slack_error(500, "internal_error"))
    started = health.failing_since
    assert started is not None
    health.failed(slack_error(429, "ratelimited"))
    health.failed(aiohttp.ClientConnectionError("connection refused"))
    note = health.note(now=started + 90)
    assert note is not None
    assert "refusing kubegate's messages for 1 min" in note
    assert "last: ClientConnectionError: connection refused" in note
    health.answered()
    assert health.note() is None


def test_one_call_slack_refuses_is_not_slack_failing() -> None:
    health = SlackHealth()
    health.failed(slack_error(200, "channel_not_found"))
    assert health.note() is None


def test_what_slack_said_is_shown_as_text_not_markup() -> None:
    health = SlackHealth()
    health.failed(slack_error(503, "<!channel>"))
    note = health.note()
    assert note is not None
    assert "<!channel>" not in note
    assert "HTTP 503 &lt;!channel&gt;" in note
