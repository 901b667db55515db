"""`FakeApiServer`: the HTTPS edge (bearer-token auth, fault switches, testbed endpoints) around
the store, the REST handlers and the node heartbeats. Runs inside the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from testbed.apiserver.catalog import builtin_registry
from testbed.apiserver.certs import write_certificates
from testbed.apiserver.discovery import api_group_list, api_versions, version_info
from testbed.apiserver.errors import ApiError, json_response, unauthorized
from testbed.apiserver.handlers import RestHandlers, no_such_path, read_json
from testbed.apiserver.nodes import NodeSpec, build_node, default_nodes, heartbeat_all
from testbed.apiserver.store import ObjectStore, WatchEvent

log = logging.getLogger(__name__)
Object = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SEED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
FAULTS = ("fail_all_with_500", "hang")


class FakeApiServer:
    """A kube-apiserver stand-in that the real kubectl and kubernetes clients trust."""

    def __init__(
        self,
        *,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        nodes: list[NodeSpec] | None = None,
        version: str = "v1.31.2",
        heartbeat_interval: float = 5.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.host, self.port = host, port
        self.version = version
        self.heartbeat_interval = heartbeat_interval
        self.registry = builtin_registry()
        self.objects = ObjectStore()
        self.token = ""
        self.ca_path = self.workdir / "ca.crt"
        self.fail_all_with_500 = False
        self.pdb_violations = 0
        self._max_unschedulable = 0
        self._released = asyncio.Event()
        self._released.set()
        self._runner: web.AppRunner | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._handlers = RestHandlers(registry=self.registry, store=self.objects)
        self.objects.on_write(self._track_unschedulable)
        self._seed(nodes if nodes is not None else default_nodes(version))

    @property
    def hang(self) -> bool:
        """While true, every API request waits (until cleared, or the server stops)."""
        return not self._released.is_set()

    @hang.setter
    def hang(self, value: bool) -> None:
        if value:
            self._released.clear()
        else:
            self._released.set()

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    async def start(self) -> None:
        certificates = write_certificates(self.workdir)
        self.ca_path = certificates.ca_path
        self.token = secrets.token_urlsafe(32)
        (self.workdir / "token").write_text(self.token)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(certificates.cert_path, certificates.key_path)
        # Cancelling a handler when its client leaves is what ends abandoned watch streams.
        self._runner = web.AppRunner(self._app(), handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=tls)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="apiserver-heartbeat")
        log.info("fake apiserver listening on %s", self.url)

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        self.hang = False
        self.objects.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: Path, context: str = "testbed") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": context,
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_path)},
                }
            ],
            "users": [{"name": context, "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
            "preferences": {},
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def stats(self) -> Object:
        return {
            "pdb_violations": self.pdb_violations,
            "max_unschedulable_nodes": self._max_unschedulable,
            "unschedulable_nodes": self._count_unschedulable(),
        }

    def _seed(self, nodes: list[NodeSpec]) -> None:
        for namespace in SEED_NAMESPACES:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            body["spec"] = {"finalizers": ["kubernetes"]}
            body["status"] = {"phase": "Active"}
            self.objects.create("v1", "namespaces", body)
        for position, spec in enumerate(nodes, start=1):
            self.objects.create("v1", "nodes", build_node(spec, position))

    def _count_unschedulable(self) -> int:
        return self.objects.count(
            "v1", "nodes", lambda n: bool(n.get("spec", {}).get("unschedulable"))
        )

    def _track_unschedulable(self, event: WatchEvent) -> None:
        if (event.api_version, event.resource) == ("v1", "nodes"):
            self._max_unschedulable = max(self._max_unschedulable, self._count_unschedulable())

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            heartbeat_all(self.objects)

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._edge])
        app.router.add_get("/version", self._version)
        app.router.add_get("/api", self._api)
        app.router.add_get("/apis", self._apis)
        for probe in ("/healthz", "/readyz", "/livez"):
            app.router.add_get(probe, self._probe)
        app.router.add_get("/testbed/stats", self._stats)
        app.router.add_get("/testbed/faults", self._faults)
        app.router.add_post("/testbed/faults", self._faults)
        app.router.add_route("*", "/api/{tail:.+}", self._handlers.serve)
        app.router.add_route("*", "/apis/{tail:.+}", self._handlers.serve)
        return app

    @web.middleware
    async def _edge(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            self._authenticate(request)
            if not request.path.startswith("/testbed/"):
                await self._released.wait()
                if self.fail_all_with_500:
                    raise ApiError(500, "InternalError", "Internal error occurred: testbed fault")
            return await handler(request)
        except ApiError as error:
            return error.response()
        except web.HTTPNotFound:
            return no_such_path().response()
        except web.HTTPException:
            raise
        except Exception:
            log.exception("fake apiserver failed on %s %s", request.method, request.path)
            return ApiError(500, "InternalError", "Internal error occurred").response()

    def _authenticate(self, request: web.Request) -> None:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(presented.encode(), self.token.encode()):
            raise unauthorized()

    async def _version(self, _request: web.Request) -> web.Response:
        return json_response(version_info(self.version))

    async def _api(self, _request: web.Request) -> web.Response:
        return json_response(api_versions(f"{self.host}:{self.port}"))

    async def _apis(self, _request: web.Request) -> web.Response:
        return json_response(api_group_list(self.registry))

    async def _probe(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _stats(self, _request: web.Request) -> web.Response:
        return json_response(self.stats())

    async def _faults(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            switches = await read_json(request)
            if not isinstance(switches, dict) or not set(switches) <= set(FAULTS):
                raise ApiError(400, "BadRequest", f"faults must be an object with keys {FAULTS}")
            for name, value in switches.items():
                setattr(self, name, bool(value))
        return json_response({name: getattr(self, name) for name in FAULTS})
