"""The Slack emulator: one aiohttp server for the Web API, uploads, response URLs and transcript."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from aiohttp import web

from testbed.slack.delivery import AppResponse, Delivery, SignedRequest
from testbed.slack.payloads import Workspace
from testbed.slack.responses import ResponseUrls
from testbed.slack.signing import SlackSecrets, generate_secrets
from testbed.slack.socket_mode import SocketModeServer
from testbed.slack.transcript import JsonDict, Message, SlackFile, Transcript
from testbed.slack.users import SlackUser
from testbed.slack.web_api import WebApi

T = TypeVar("T")


class SlackEmulator:
    """A local stand-in for slack.com and for Slack's requests to an app.

    Point slack_sdk at `api_url`; set `app_url` to the app's `/slack/events` URL and drive it
    with `emulator.user("U…").slash(...)` / `.click(...)`; read what happened in the transcript.
    """

    generate_secrets = staticmethod(generate_secrets)

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_token: str | None = None,
        signing_secret: str | None = None,
        bot_user_id: str = "U0KUBEGATE",
        bot_name: str = "kubegate",
        users: dict[str, str] | None = None,
        usergroups: dict[str, list[str]] | None = None,
        channels: dict[str, str] | None = None,
        team_id: str = "T0TESTBED",
        team_domain: str = "kubegate-testbed",
        api_app_id: str = "A0KUBEGATE",
        bot_id: str = "B0KUBEGATE",
        app_token: str | None = None,
    ) -> None:
        fresh: SlackSecrets = generate_secrets()
        self.host = host
        self.port = port
        self.bot_token = bot_token or fresh.bot_token
        self.signing_secret = signing_secret or fresh.signing_secret
        self.bot_user_id = bot_user_id
        self.users: dict[str, str] = {bot_user_id: bot_name, **(users or {})}
        self.usergroups: dict[str, list[str]] = dict(usergroups or {})
        self.channels: dict[str, str] = dict(channels or {})
        self.workspace = Workspace(
            team_id=team_id,
            team_domain=team_domain,
            api_app_id=api_app_id,
            verification_token=fresh.verification_token,
            bot_id=bot_id,
        )
        self._changed = asyncio.Event()
        self.transcript = Transcript(on_change=self._notify)
        self.api = WebApi(
            transcript=self.transcript,
            workspace=self.workspace,
            bot_token=self.bot_token,
            bot_user_id=bot_user_id,
            users=self.users,
            usergroups=self.usergroups,
            base_url=lambda: self.url,
        )
        self.responses = ResponseUrls(transcript=self.transcript, bot_user_id=bot_user_id)
        self.delivery = Delivery(signing_secret=self.signing_secret)
        self.app_token = app_token or f"xapp-1-{api_app_id}-{secrets.token_hex(12)}"
        self.socket = SocketModeServer(
            app_token=self.app_token, app_id=api_app_id, base_url=lambda: self.url
        )
        self.delivery.socket = self.socket
        self._runner: web.AppRunner | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(self.socket.routes())  # before /api/{method}, which would take it
        app.add_routes(self.api.routes())
        app.add_routes(self.responses.routes())
        app.add_routes([web.get("/emulator/transcript", self._transcript_endpoint)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        # With port 0 the OS picked one; read it back so URLs are real.
        self.port = int(self._runner.addresses[0][1])
        await self.delivery.start()

    async def stop(self) -> None:
        await self.socket.close()
        await self.delivery.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The server's root, without a trailing slash: http://127.0.0.1:PORT."""
        if self._runner is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base_url for slack_sdk clients; ends with /api/ as slack.com's does."""
        return f"{self.url}/api/"

    @property
    def app_url(self) -> str | None:
        """Where signed slash commands and clicks are posted (the app's /slack/events)."""
        return self.delivery.app_url

    @app_url.setter
    def app_url(self, value: str) -> None:
        self.delivery.app_url = value

    # --- knobs -------------------------------------------------------------------------------

    @property
    def calls(self) -> Counter[str]:
        """HTTP calls per Web API method, rejected (401-ish, 429) ones included."""
        return self.api.calls

    def rate_limit(self, method: str, times: int, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 and `Retry-After: retry_after`."""
        self.api.rate_limit(method, times, retry_after)

    def user(self, user_id: str, name: str | None = None) -> SlackUser:
        """A member who can send commands and clicks; unknown ids join the workspace."""
        if name is not None or user_id not in self.users:
            self.users[user_id] = name or user_id.lower()
        return SlackUser(self, user_id, self.users[user_id])

    def channel_name(self, channel: str) -> str:
        return self.channels.get(channel, channel.lower())

    @property
    def last_request(self) -> SignedRequest | None:
        """The last signed request sent to the app; `replay` it to act as a Slack retry."""
        return self.delivery.last_request

    async def replay(self, request: SignedRequest) -> AppResponse:
        """Send a request again byte for byte (use `request.as_retry()` for retry headers)."""
        return await self.delivery.send(request)

    async def send_signed(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        retry_num: int | None = None,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> AppResponse:
        """Sign an arbitrary body and post it to the app (raw-body tests)."""
        return await self.delivery.send_signed(
            body,
            timestamp=timestamp,
            signing_secret=signing_secret,
            retry_num=retry_num,
            content_type=content_type,
        )

    # --- transcript --------------------------------------------------------------------------

    def messages(self, channel: str) -> list[Message]:
        return self.transcript.messages(channel)

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        return self.transcript.replies(channel, thread_ts)

    def ephemerals(self, channel: str, user: str | None = None) -> list[Message]:
        return self.transcript.ephemerals(channel, user)

    def message(self, channel: str, ts: str) -> Message | None:
        return self.transcript.message(channel, ts)

    def files(self, channel: str, thread_ts: str | None = None) -> list[SlackFile]:
        return self.transcript.files(channel, thread_ts)

    def transcript_json(self, channel: str | None = None) -> JsonDict:
        channels = [channel] if channel else self.transcript.channels()
        return {"channels": [self.transcript.to_json(c) for c in channels]}

    async def wait_for(self, condition: Callable[[], T | None], timeout: float = 5.0) -> T:
        """Wait until `condition()` is truthy and return it; re-checked on transcript changes."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    result = condition()
                    if result:
                        return result
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"condition not met within {timeout}s; transcript: {self.transcript_json()}"
            ) from None

    def _notify(self) -> None:
        # Wake every waiter once, then give later waiters a fresh event to sleep on.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _transcript_endpoint(self, request: web.Request) -> web.Response:
        return web.json_response(self.transcript_json(request.query.get("channel")))
