"""Slack edge: Bolt (HTTP mode over aiohttp) in, Web API out. Thin: it translates, kubegate decides.

`/slack/events` takes slash commands and button clicks (Bolt verifies the signature and the
5-minute timestamp window, answering 401 otherwise); `/healthz` answers liveness probes.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat import Card
from bot.service import Kubegate

log = logging.getLogger(__name__)
SLACK_TEXT_LIMIT = 2900  # a section block holds 3000 characters


def web_client(
    *, token: str, api_url: str | None, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    # One kept session: a new connection (and TLS handshake) per Slack call costs more than the call.
    client = AsyncWebClient(
        token=token, base_url=api_url or AsyncWebClient.BASE_URL, session=session
    )
    # Honour Retry-After on 429 rather than dropping an update.
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=5))
    return client


def card_blocks(card: Card) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [_section(card.headline)]
    blocks += [_section(text) for text in card.sections if text]
    if card.buttons:
        elements = []
        for button in card.buttons:
            element: dict[str, Any] = {
                "type": "button",
                "action_id": button.action_id,
                "value": button.value,
                "text": {"type": "plain_text", "text": button.label},
            }
            if button.style:
                element["style"] = button.style
            elements.append(element)
        blocks.append({"type": "actions", "block_id": "kubegate.actions", "elements": elements})
    return blocks


def _section(text: str) -> dict[str, Any]:
    if len(text) > SLACK_TEXT_LIMIT:
        text = text[: SLACK_TEXT_LIMIT - 20] + "\n… (truncated)"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


class SlackChat:
    """The Chat interface over Slack's Web API."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str:
        response = await self.client.chat_postMessage(
            channel=channel, text=card.headline, blocks=card_blocks(card), thread_ts=thread_ts
        )
        return str(response["ts"])

    async def update(self, channel: str, ts: str, card: Card) -> None:
        await self.client.chat_update(
            channel=channel, ts=ts, text=card.headline, blocks=card_blocks(card)
        )

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        await self.client.chat_postEphemeral(
            channel=channel, user=user, text=text, blocks=[_section(text)]
        )

    async def ephemeral_card(self, channel: str, user: str, card: Card) -> None:
        await self.client.chat_postEphemeral(
            channel=channel, user=user, text=card.headline, blocks=card_blocks(card)
        )

    async def upload(self, channel: str, thread_ts: str, *, title: str, content: str) -> None:
        await self.client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            title=title,
            filename=title.replace(" ", "-") + ".txt",
            content=content,
        )

    async def group_members(self, group_id: str) -> set[str]:
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            log.warning(
                "cannot list members of user group %s: %s", group_id, error.response.get("error")
            )
            return set()
        return set(response.get("users") or [])


def bolt_app(kubegate: Kubegate, *, client: AsyncWebClient, signing_secret: str) -> AsyncApp:
    app = AsyncApp(client=client, signing_secret=signing_secret, process_before_response=False)

    @app.command("/kube")
    async def kube_command(ack: AsyncAck, body: dict[str, Any]) -> None:
        answer = kubegate.receive_command(
            user=body["user_id"], channel=body["channel_id"], text=body.get("text", "")
        )
        await ack(text=answer.text)
        if answer.work is not None:
            kubegate.answer_later(answer.work)

    @app.action(re.compile(r"^kubegate\."))
    async def button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        action = body["actions"][0]
        channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
        kubegate.spawn(
            kubegate.click(
                user=body["user"]["id"],
                channel=channel,
                action_id=action["action_id"],
                message_ts=(body.get("container") or {}).get("message_ts"),
                value=action.get("value", ""),
            )
        )

    return app


def web_application(app: AsyncApp) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    application = web.Application()
    application.router.add_post("/slack/events", events)
    application.router.add_get("/healthz", healthz)
    return application
