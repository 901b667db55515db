"""The Slack emulator, kept honest by slack_sdk's own client and Bolt's request verification."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from testbed.slack import ButtonNotFoundError, SlackEmulator, signature

OPS = "C0OPS"

APPROVE_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Cordon worker-2?"}},
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "job-1",
                "text": {"type": "plain_text", "text": "Approve"},
            },
            {
                "type": "button",
                "action_id": "reject",
                "value": "job-1",
                "text": {"type": "plain_text", "text": "Reject"},
            },
        ],
    },
]


@pytest.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    emulator = SlackEmulator(
        users={"U0ALICE": "alice", "U0BOB": "bob"},
        usergroups={"S0SRE": ["U0ALICE", "U0BOB"]},
    )
    async with emulator:
        yield emulator


@pytest.fixture
async def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)


class TinyApp:
    """A Bolt app with one command and two buttons, recording what its listeners saw."""

    def __init__(self, emu: SlackEmulator) -> None:
        self.commands: list[dict[str, Any]] = []
        self.clicks: list[dict[str, Any]] = []
        self.bolt = AsyncApp(
            token=emu.bot_token,
            signing_secret=emu.signing_secret,
            client=AsyncWebClient(token=emu.bot_token, base_url=emu.api_url),
        )
        self.bolt.command("/kube")(self.kube)
        self.bolt.action("approve")(self.approve)
        self.bolt.action("reject")(self.reject)

    async def kube(self, ack: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
        self.commands.append(command)
        await ack("pong")
        await client.chat_postMessage(
            channel=command["channel_id"], text="Cordon worker-2?", blocks=APPROVE_BLOCKS
        )

    async def approve(self, ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        self.clicks.append(body)
        await ack()
        await client.chat_postMessage(
            channel=body["container"]["channel_id"],
            thread_ts=body["container"]["message_ts"],
            text=f"approved by <@{body['user']['id']}>",
        )

    async def reject(self, ack: Any, body: dict[str, Any], respond: Any) -> None:
        self.clicks.append(body)
        await ack()
        await respond(text=f"rejected by <@{body['user']['id']}>", replace_original=True)


@pytest.fixture
async def app(emu: SlackEmulator) -> AsyncIterator[TinyApp]:
    tiny = TinyApp(emu)
    runner = web.AppRunner(tiny.bolt.web_app(path="/slack/events"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    emu.app_url = f"http://127.0.0.1:{port}/slack/events"
    yield tiny
    await runner.cleanup()


# --- the Web API, through slack_sdk ----------------------------------------------------------


async def test_posted_updated_and_threaded_messages_appear_in_the_transcript(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel=OPS, text="Drain worker-1", blocks=APPROVE_BLOCKS)
    reply = await client.chat_postMessage(channel=OPS, thread_ts=root["ts"], text="step 1 done")
    await client.chat_update(channel=OPS, ts=root["ts"], text="Drain worker-1: SUCCEEDED")

    [message] = emu.messages(OPS)
    assert message.ts == root["ts"] and message.user == "U0KUBEGATE"
    assert message.text == "Drain worker-1: SUCCEEDED"
    assert [b["type"] for b in message.blocks] == ["section", "actions"]  # kept by the update
    assert [v.text for v in message.versions] == ["Drain worker-1", "Drain worker-1: SUCCEEDED"]
    assert [r.text for r in emu.replies(OPS, root["ts"])] == ["step 1 done"]
    assert float(reply["ts"]) > float(root["ts"])


async def test_form_encoded_posts_carry_blocks_as_json_strings(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    form = {"channel": OPS, "text": "Cordon?", "blocks": json.dumps(APPROVE_BLOCKS)}
    posted = await client.api_call("chat.postMessage", data=form)
    await client.api_call("chat.update", params={"channel": OPS, "ts": posted["ts"], "text": "ok"})
    [message] = emu.messages(OPS)
    assert message.blocks[1]["elements"][0]["action_id"] == "approve"
    assert message.text == "ok"


async def test_updating_an_unknown_message_is_message_not_found(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel=OPS, ts="1700000000.000100", text="x")
    assert raised.value.response["error"] == "message_not_found"


async def test_ephemerals_are_seen_only_by_their_user(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    sent = await client.chat_postEphemeral(channel=OPS, user="U0BOB", text="only for bob")
    assert [m.text for m in emu.ephemerals(OPS, "U0BOB")] == ["only for bob"]
    assert emu.ephemerals(OPS, "U0ALICE") == [] and emu.messages(OPS) == []
    assert emu.ephemerals(OPS)[0].ts == sent["message_ts"]


async def test_uploaded_file_shows_in_its_thread_with_title_and_content(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel=OPS, text="Drain worker-1")
    done = await client.files_upload_v2(
        channel=OPS,
        thread_ts=root["ts"],
        filename="drain.log",
        title="drain output",
        content="evicted shop/web-1\nevicted shop/web-2\n",
    )
    assert done["file"]["title"] == "drain output"
    [shared] = emu.files(OPS, root["ts"])
    assert shared.title == "drain output" and shared.text.startswith("evicted shop/web-1")
    transcript = await _get_json(f"{emu.url}/emulator/transcript?channel={OPS}")
    [thread_reply] = transcript["channels"][0]["messages"][0]["replies"]
    assert thread_reply["files"][0]["content"].endswith("web-2\n")


async def test_users_and_usergroups_are_answered_from_the_workspace(client: AsyncWebClient) -> None:
    members = await client.usergroups_users_list(usergroup="S0SRE")
    alice = await client.users_info(user="U0ALICE")
    bot = await client.users_info(user="U0KUBEGATE")
    assert members["users"] == ["U0ALICE", "U0BOB"]
    assert alice["user"]["name"] == "alice" and alice["user"]["is_bot"] is False
    assert alice["user"]["tz"] and bot["user"]["is_bot"] is True


async def test_a_wrong_token_is_invalid_auth(emu: SlackEmulator) -> None:
    stranger = AsyncWebClient(token="xoxb-not-ours", base_url=emu.api_url)
    with pytest.raises(SlackApiError) as raised:
        await stranger.chat_postMessage(channel=OPS, text="hi")
    assert raised.value.response["error"] == "invalid_auth"
    assert emu.messages(OPS) == []


async def test_rate_limited_post_is_retried_after_retry_after_and_posted_once(
    emu: SlackEmulator,
) -> None:
    patient = AsyncWebClient(
        token=emu.bot_token,
        base_url=emu.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    emu.rate_limit("chat.postMessage", 1, 1)
    started = time.monotonic()
    await patient.chat_postMessage(channel=OPS, text="after the 429")
    assert time.monotonic() - started >= 1.0  # slack_sdk honoured Retry-After
    assert emu.calls["chat.postMessage"] == 2
    assert [m.text for m in emu.messages(OPS)] == ["after the 429"]


async def test_rate_limit_without_retry_handler_surfaces_429(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.rate_limit("chat.update", 1, 7)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel=OPS, ts="1.0", text="x")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"


# --- Slack's side: signed requests to a Bolt app ---------------------------------------------


def test_signatures_verify_with_slack_sdk() -> None:
    now = int(time.time())
    body = b"command=%2Fkube&text=cordon+worker-2"
    headers = {"x-slack-request-timestamp": str(now)}
    headers["x-slack-signature"] = signature(signing_secret="s3cret", timestamp=now, body=body)
    assert SignatureVerifier("s3cret").is_valid_request(body, headers)


async def test_slash_command_is_acked_and_the_ack_shows_as_ephemeral(
    emu: SlackEmulator, app: TinyApp
) -> None:
    response = await emu.user("U0ALICE").slash("/kube cordon worker-2", channel=OPS)

    assert response.status == 200 and response.body == "pong"
    assert [m.text for m in emu.ephemerals(OPS, "U0ALICE")] == ["pong"]
    assert app.commands[0]["text"] == "cordon worker-2"
    assert app.commands[0]["user_name"] == "alice"
    root = await emu.wait_for(lambda: next(iter(emu.messages(OPS)), None))
    assert root.text == "Cordon worker-2?"


async def test_clicking_approve_runs_the_handler_as_that_user(
    emu: SlackEmulator, app: TinyApp
) -> None:
    await emu.user("U0ALICE").slash("/kube cordon worker-2", channel=OPS)
    root = await emu.wait_for(lambda: next(iter(emu.messages(OPS)), None))

    response = await emu.user("U0BOB").click(channel=OPS, message_ts=root.ts, label="Approve")

    assert response.status == 200
    [reply] = await emu.wait_for(lambda: emu.replies(OPS, root.ts))
    assert reply.text == "approved by <@U0BOB>"
    [action] = app.clicks[0]["actions"]
    assert (action["action_id"], action["value"], action["block_id"]) == (
        "approve",
        "job-1",
        "decision",
    )


async def test_respond_with_replace_original_updates_the_clicked_message(
    emu: SlackEmulator, app: TinyApp, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel=OPS, text="Cordon?", blocks=APPROVE_BLOCKS)
    await emu.user("U0BOB").click(channel=OPS, message_ts=root["ts"], label="Reject")

    message = await emu.wait_for(lambda: next((m for m in emu.messages(OPS) if m.updates), None))
    assert message.ts == root["ts"] and message.text == "rejected by <@U0BOB>"
    assert message.blocks == []


async def test_buttons_in_ephemerals_can_be_clicked(
    emu: SlackEmulator, app: TinyApp, client: AsyncWebClient
) -> None:
    sent = await client.chat_postEphemeral(
        channel=OPS, user="U0ALICE", text="Cordon?", blocks=APPROVE_BLOCKS
    )
    await emu.user("U0ALICE").click(channel=OPS, message_ts=sent["message_ts"], label="Approve")
    assert app.clicks[0]["container"]["is_ephemeral"] is True
    with pytest.raises(LookupError):
        await emu.user("U0BOB").click(channel=OPS, message_ts=sent["message_ts"], label="Approve")


async def test_clicking_a_label_the_message_lacks_names_the_buttons_it_has(
    emu: SlackEmulator, app: TinyApp, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel=OPS, text="Cordon?", blocks=APPROVE_BLOCKS)
    with pytest.raises(ButtonNotFoundError, match="Approve"):
        await emu.user("U0BOB").click(channel=OPS, message_ts=root["ts"], label="Details")


async def test_a_wrong_signing_secret_is_rejected_before_any_handler(
    emu: SlackEmulator, app: TinyApp
) -> None:
    alice = emu.user("U0ALICE")
    response = await alice.slash("/kube cordon worker-2", channel=OPS, signing_secret="wrong")
    assert response.status == 401
    assert app.commands == [] and emu.ephemerals(OPS) == []


async def test_a_ten_minute_old_request_is_rejected(emu: SlackEmulator, app: TinyApp) -> None:
    stale = int(time.time()) - 600
    response = await emu.user("U0ALICE").slash("/kube uptime", channel=OPS, timestamp=stale)
    assert response.status == 401 and app.commands == []


async def test_the_last_request_can_be_replayed_as_slacks_retry(
    emu: SlackEmulator, app: TinyApp
) -> None:
    await emu.user("U0ALICE").slash("/kube uptime", channel=OPS)
    original = emu.last_request
    assert original is not None

    response = await emu.replay(original.as_retry(1))

    assert response.status == 200 and len(app.commands) == 2
    assert emu.last_request is not None and emu.last_request.body == original.body
    assert emu.last_request.headers["X-Slack-Retry-Num"] == "1"


async def _get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return json.loads(await response.text())
