"""`python -m testbed fault --dir DIR slack-error 500|429 [--for DURATION]`: Slack's Web API
fails for every caller, as during a Slack incident, until cleared or its time is up."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from testbed.up import Testbed
from tests.integration.test_ha_testbed import fault


def client(testbed: Testbed) -> AsyncWebClient:
    return AsyncWebClient(token=testbed.slack.bot_token, base_url=testbed.slack.api_url)


async def test_slack_error_500_fails_every_web_api_call_until_cleared(testbed: Testbed) -> None:
    switched = await fault(testbed, "slack-error", "500")
    assert switched.code == 0, switched.stderr
    with pytest.raises(SlackApiError) as failed:
        await client(testbed).chat_postMessage(channel="C0OPS", text="hello")
    assert failed.value.response.status_code == 500
    assert testbed.slack.messages("C0OPS") == []

    assert (await fault(testbed, "slack-error-clear")).code == 0
    await client(testbed).chat_postMessage(channel="C0OPS", text="hello")
    assert [m.text for m in testbed.slack.messages("C0OPS")] == ["hello"]


async def test_slack_error_429_asks_callers_to_retry_after_a_while(testbed: Testbed) -> None:
    timed = await fault(testbed, "slack-error", "429", "--for", "20s")
    assert timed.code == 0 and "ends by itself in 20 s" in timed.stdout, timed.stderr
    with pytest.raises(SlackApiError) as limited:
        await client(testbed).chat_postMessage(channel="C0OPS", text="hello")
    assert limited.value.response.status_code == 429
    assert int(limited.value.response.headers["Retry-After"]) >= 1


async def test_slack_error_takes_only_codes_slack_answers(testbed: Testbed) -> None:
    wrong = await fault(testbed, "slack-error", "404")
    assert wrong.code != 0 and "slack-error takes one of" in wrong.stderr
