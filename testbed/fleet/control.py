"""A small HTTP endpoint in the fleet's process for what shims cannot do through the Kubernetes
API: `kubeadm upgrade apply` moving the fake apiserver's own version, and a kubelet (re)start,
which the apiserver's kubelets play out over the following seconds (NotReady, then Ready).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from testbed.apiserver import FakeApiServer

VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


class ControlEndpoint:
    def __init__(self, apiserver: FakeApiServer | None) -> None:
        self._apiserver = apiserver
        self._token = secrets.token_urlsafe(24)
        self._runner: web.AppRunner | None = None
        self.url = ""
        # Routes the world adds once it is up (e.g. testbed/cpjoin.py's control-plane join).
        self.handlers: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {}

    def settings(self) -> dict[str, Any] | None:
        return {"url": self.url, "token": self._token} if self.url else None

    async def start(self) -> None:
        if self._apiserver is None:
            return
        app = web.Application()
        app.router.add_post("/control-plane-version", self._set_version)
        app.router.add_post("/kubelet-started", self._kubelet_started)
        app.router.add_post("/{name}", self._added)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _trusted(self, request: web.Request) -> bool:
        presented = request.headers.get("X-Testbed-Token", "")
        return hmac.compare_digest(presented.encode(), self._token.encode())

    async def _added(self, request: web.Request) -> web.Response:
        if not self._trusted(request):
            return web.json_response({"error": "bad token"}, status=401)
        handler = self.handlers.get(request.match_info["name"])
        if handler is None:
            return web.json_response({"error": "no such control route"}, status=404)
        return await handler(request)

    async def _kubelet_started(self, request: web.Request) -> web.Response:
        if not self._trusted(request):
            return web.json_response({"error": "bad token"}, status=401)
        body = await request.json()
        node, version = body.get("node"), body.get("version")
        if not isinstance(node, str) or not isinstance(version, str) or not VERSION.match(version):
            return web.json_response({"error": "node and version (v1.31.3) needed"}, status=400)
        if self._apiserver is not None:
            self._apiserver.kubelets.kubelet_started(node, version)
        return web.json_response({"node": node, "version": version})

    async def _set_version(self, request: web.Request) -> web.Response:
        if not self._trusted(request):
            return web.json_response({"error": "bad token"}, status=401)
        body = await request.json()
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str) or not VERSION.match(version):
            return web.json_response({"error": "version must look like v1.31.3"}, status=400)
        # Several control planes: each API server moves only when the kubelet model restarts
        # it from its new manifest (testbed/controlplanes.py); setting the first one's version
        # here would make a still-running old server answer the new version.
        if self._apiserver is not None and len(self._apiserver.endpoints) == 1:
            self._apiserver.version = version
        return web.json_response({"version": version})
