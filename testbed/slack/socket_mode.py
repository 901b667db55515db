"""Slack's side of Socket Mode: `apps.connections.open` hands the app a WebSocket URL; requests
travel as envelopes over it and the app acknowledges each one (with an optional response).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from testbed.slack.delivery import AppResponse

ACK_TIMEOUT_S = 3.0  # Slack's limit for an acknowledgement


class SocketModeServer:
    def __init__(self, *, app_token: str, app_id: str, base_url: Callable[[], str]) -> None:
        self.app_token = app_token
        self._app_id = app_id
        self._base_url = base_url
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.connected_event = asyncio.Event()

    @property
    def connected(self) -> bool:
        return any(not ws.closed for ws in self._sockets)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/apps.connections.open", self.open_connection),
            web.get("/emulator/socket", self.socket),
        ]

    async def open_connection(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.app_token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        ticket = secrets.token_urlsafe(12)
        self._tickets.add(ticket)
        ws_url = (
            self._base_url().replace("http://", "ws://", 1) + f"/emulator/socket?ticket={ticket}"
        )
        return web.json_response({"ok": True, "url": ws_url})

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            raise web.HTTPUnauthorized(text="unknown ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "connection_info": {"app_id": self._app_id},
            }
        )
        self.connected_event.set()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._acknowledged(json.loads(message.data))
        finally:
            self._sockets.remove(ws)
        return ws

    def _acknowledged(self, message: dict[str, Any]) -> None:
        waiting = self._acks.pop(str(message.get("envelope_id", "")), None)
        if waiting is not None and not waiting.done():
            waiting.set_result(message)

    async def deliver(self, body: bytes) -> AppResponse:
        """A request the app would get over HTTP, sent as a Socket Mode envelope instead."""
        fields = dict(parse_qsl(body.decode()))
        if "payload" in fields:
            kind, payload = "interactive", json.loads(fields["payload"])
        else:
            kind, payload = "slash_commands", fields
        envelope_id = str(uuid.uuid4())
        answered: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = answered
        ws = next(ws for ws in reversed(self._sockets) if not ws.closed)
        await ws.send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind == "slash_commands",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        try:
            async with asyncio.timeout(ACK_TIMEOUT_S):
                ack = await answered
        except TimeoutError:
            self._acks.pop(envelope_id, None)
            return AppResponse(status=504, body="no acknowledgement within 3 s")
        response = ack.get("payload")
        return AppResponse(status=200, body=json.dumps(response) if response else "")

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
