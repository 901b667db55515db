"""Slack edge: Bolt (HTTP mode over aiohttp) in, Web API out. Thin: it translates, kubegate decides.

`/slack/events` takes slash commands and button clicks. Before Bolt parses anything, the edge
caps the body, verifies the signature and the 5-minute timestamp window and refuses a replayed
slash command (401, or 413 when too large), logging each refusal as one short line;
`/healthz` answers liveness probes.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat import Card
from bot.service import Kubegate
from bot.slack_health import SlackHealth

log = logging.getLogger(__name__)
SLACK_TEXT_LIMIT = 2900  # a section block holds 3000 characters
SLACK_TIMEOUT = 10  # seconds for one Web API call (the SDK's default is 30)


def web_client(
    *, token: str, api_url: str | None, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    # One kept session: a new connection (and TLS handshake) per Slack call costs more than the call.
    client = AsyncWebClient(
        token=token,
        base_url=api_url or AsyncWebClient.BASE_URL,
        session=session,
        timeout=SLACK_TIMEOUT,
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
    """The Chat interface over Slack's Web API; `health` says whether Slack takes the calls."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self.health = SlackHealth()

    async def _call(self, method: Callable[..., Awaitable[Any]], **arguments: Any) -> Any:
        try:
            response = await method(**arguments)
        except Exception as error:
            self.health.failed(error)
            raise
        self.health.answered()
        return response

    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str:
        response = await self._call(
            self.client.chat_postMessage,
            channel=channel,
            text=card.headline,
            blocks=card_blocks(card),
            thread_ts=thread_ts,
        )
        return str(response["ts"])

    async def update(self, channel: str, ts: str, card: Card) -> None:
        await self._call(
            self.client.chat_update,
            channel=channel,
            ts=ts,
            text=card.headline,
            blocks=card_blocks(card),
        )

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        await self._ephemeral(channel, user, text, [_section(text)])

    async def ephemeral_card(self, channel: str, user: str, card: Card) -> None:
        await self._ephemeral(channel, user, card.headline, card_blocks(card))

    async def _ephemeral(
        self, channel: str, user: str, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        await self._call(
            self.client.chat_postEphemeral, channel=channel, user=user, text=text, blocks=blocks
        )

    async def upload(self, channel: str, thread_ts: str, *, title: str, content: str) -> None:
        await self._call(
            self.client.files_upload_v2,
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


class AcknowledgingApp(AsyncApp):
    """Bolt's app, telling kubegate while it answers a request (HTTP or Socket Mode): commands'
    answers wait for the acks in flight, so the ack never queues behind them (bot/work.py)."""

    def __init__(self, kubegate: Kubegate, **bolt: Any) -> None:
        super().__init__(**bolt)
        self._kubegate = kubegate

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        with self._kubegate.acknowledging():
            return await super().async_dispatch(req)


def bolt_app(kubegate: Kubegate, *, client: AsyncWebClient, signing_secret: str) -> AsyncApp:
    # The edge (web_application) verifies every HTTP request before Bolt parses it; Bolt's own
    # check would log a refused request's whole body. Socket Mode requests carry no signature.
    app = AcknowledgingApp(
        kubegate,
        client=client,
        signing_secret=signing_secret,
        process_before_response=False,
        request_verification_enabled=False,
    )

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


def web_application(app: AsyncApp, *, signing_secret: str) -> web.Application:
    guard = SlackRequestGuard(signing_secret)

    async def events(request: web.Request) -> web.Response:
        admitted = await guard.admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        bolt_request = AsyncBoltRequest(
            body=admitted,
            query=request.query_string,
            headers=request.headers,  # type: ignore[arg-type]
        )
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    application = web.Application()
    application.router.add_post("/slack/events", events)
    application.router.add_get("/healthz", healthz)
    return application


# What Slack sends is bounded: a message holds at most 40,000 characters (160 KB as UTF-8, under
# 480 KB form-encoded) and a block 3,000, and a click's payload carries kubegate's own message.
# Anything larger is refused before it is read.
MAX_BODY_BYTES = 512 * 1024
# Slack's window: a request whose timestamp is further than 5 minutes from now is refused.
SIGNATURE_WINDOW_S = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class SlackRequestGuard:
    """Admits a request to /slack/events only when it is small, signed by Slack, recent and, for
    a slash command, not seen before (https://api.slack.com/authentication/verifying-requests-from-slack).
    """

    def __init__(
        self,
        signing_secret: str,
        *,
        refusals: RefusalLog | None = None,
        replays: ReplayCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._refusals = refusals or RefusalLog()
        self._replays = replays or ReplayCache()
        self._clock = clock

    async def admit(self, request: web.Request) -> str | web.Response:
        """The body to hand to Bolt, or the answer that refuses the request."""
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not _TIMESTAMP.fullmatch(timestamp):
            return self._refuse(request, "malformed timestamp", timestamp)
        if abs(self._clock() - int(timestamp)) > SIGNATURE_WINDOW_S:
            return self._refuse(request, "timestamp outside the 5-minute window", timestamp)
        body = await _read_at_most(request, MAX_BODY_BYTES)
        if body is None:
            return self._refuse(request, f"body over {MAX_BODY_BYTES} bytes", timestamp, 413)
        try:
            text = body.decode("utf-8")  # what Slack sends; the verifier would raise on others
        except UnicodeDecodeError:
            return self._refuse(request, "body is not UTF-8", timestamp, 400)
        if not self._verifier.is_valid(text, timestamp, signature):
            return self._refuse(request, "bad signature", timestamp)
        # Slack never sends a slash command twice; the same signed one again is a replay. (Clicks
        # are idempotent where they land, and Slack's own redeliveries repeat them unchanged.)
        expires = int(timestamp) + SIGNATURE_WINDOW_S
        if _is_slash_command(text) and not self._replays.first_time(signature, expires=expires):
            return self._refuse(request, "replayed slash command", timestamp)
        return text

    def _refuse(
        self, request: web.Request, reason: str, timestamp: str, status: int = 401
    ) -> web.Response:
        self._refusals.refused(
            reason, peer=request.remote, size=request.content_length, timestamp=timestamp
        )
        return web.json_response({"error": "invalid request"}, status=status)


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is known to be longer than `limit`."""
    if request.content_length is not None and request.content_length > limit:
        return None  # never read
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _is_slash_command(form: str) -> bool:
    # Slash commands arrive as a form with `command=/kube`; clicks as `payload=<json>`. Only the
    # field names are decoded: this runs before every ack, and Bolt parses the whole form anyway.
    return any(
        urllib.parse.unquote_plus(field.partition("=")[0]) == "command" for field in form.split("&")
    )


class ReplayCache:
    """Signatures seen within Slack's timestamp window. A signature covers the timestamp and the
    body, so the same one again is the same request; once its timestamp is out of the window
    the signature check refuses it anyway, and it is forgotten."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seen: set[str] = set()
        self._expiry: list[tuple[int, str]] = []

    def first_time(self, signature: str, *, expires: int) -> bool:
        now = self._clock()
        while self._expiry and self._expiry[0][0] < now:
            self._seen.discard(heapq.heappop(self._expiry)[1])
        if signature in self._seen:
            return False
        self._seen.add(signature)
        heapq.heappush(self._expiry, (expires, signature))
        return True


class RefusalLog:
    """One short, escaped line per refused request, never its body: anyone who reaches the port
    can send them, so at most `per_window` lines a window, then one line counting the rest."""

    def __init__(
        self,
        *,
        per_window: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._clock = clock
        self._window_start = -window_s
        self._logged = 0
        self._suppressed = 0

    def refused(self, reason: str, *, peer: str | None, size: int | None, timestamp: str) -> None:
        now = self._clock()
        if now - self._window_start >= self.window_s:
            self._report_suppressed()
            self._window_start, self._logged = now, 0
        if self._logged >= self.per_window:
            if not self._suppressed:
                # Count the rest of this window, and say how many once it is over.
                asyncio.get_running_loop().call_later(
                    self._window_start + self.window_s - now, self._report_suppressed
                )
            self._suppressed += 1
            return
        self._logged += 1
        log.warning(
            "refused a request to /slack/events from %s: %s (%s bytes, timestamp %s)",
            _clip(peer or "?"),
            reason,
            size if size is not None else "?",
            _clip(timestamp),
        )

    def _report_suppressed(self) -> None:
        if self._suppressed:
            log.warning(
                "suppressed %d more refused requests to /slack/events in the last %g s",
                self._suppressed,
                self.window_s,
            )
            self._suppressed = 0


def _clip(value: str, limit: int = 40) -> str:
    """Untrusted text for a log line: escaped (repr, so no newline gets through) and short."""
    return repr(value[:limit]) + ("…" if len(value) > limit else "")
