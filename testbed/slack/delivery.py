"""Signing and sending requests to the app as Slack does, and replaying them as its retries."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import aiohttp

from testbed.slack.signing import signed_headers

if TYPE_CHECKING:
    from testbed.slack.socket_mode import SocketModeServer


@dataclass(frozen=True)
class SignedRequest:
    """The exact bytes and headers of one request sent to the app."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def as_retry(self, retry_num: int = 1, reason: str = "http_timeout") -> SignedRequest:
        """The same request as Slack redelivers it: identical body and signature, retry headers."""
        headers = {**self.headers, "X-Slack-Retry-Num": str(retry_num)}
        headers["X-Slack-Retry-Reason"] = reason
        return replace(self, headers=headers)


@dataclass(frozen=True)
class AppResponse:
    """What the app answered synchronously."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is plain text or empty."""
        try:
            return json.loads(self.body)
        except json.JSONDecodeError:
            return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Delivery:
    """Posts signed requests to the app and remembers the last one."""

    def __init__(self, *, signing_secret: str) -> None:
        self.signing_secret = signing_secret
        self.app_url: str | None = None
        self.last_request: SignedRequest | None = None
        self.sent: list[SignedRequest] = []
        self._session: aiohttp.ClientSession | None = None
        # When the app connected over Socket Mode and has no URL, requests go as envelopes.
        self.socket: SocketModeServer | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_signed(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        content_type: str = "application/x-www-form-urlencoded",
    ) -> AppResponse:
        """Sign `body` (with the real secret unless told otherwise) and post it to the app."""
        if self.app_url is None and self.socket is not None and self.socket.connected:
            return await self.socket.deliver(body)
        if self.app_url is None:
            raise RuntimeError("set emulator.app_url to the app's /slack/events URL first")
        headers = signed_headers(
            signing_secret=signing_secret if signing_secret is not None else self.signing_secret,
            timestamp=timestamp if timestamp is not None else int(time.time()),
            body=body,
            content_type=content_type,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )
        return await self.send(SignedRequest(url=self.app_url, body=body, headers=headers))

    async def send(self, request: SignedRequest) -> AppResponse:
        """Post exactly these bytes and headers; use it to replay a request unchanged."""
        if self._session is None:
            raise RuntimeError("the emulator is not started")
        self.last_request = request
        self.sent.append(request)
        async with self._session.post(
            request.url, data=request.body, headers=request.headers
        ) as response:
            return AppResponse(
                status=response.status,
                body=await response.text(),
                headers=dict(response.headers),
            )
