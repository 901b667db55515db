"""`FakeApiServer`: the HTTPS edge (bearer-token auth, fault switches, testbed endpoints) around
the store, the REST handlers, the controllers and the node heartbeats, in the caller's loop.
One kube-apiserver per control plane (`endpoints`), each with its own port and version, all
over the one store, as the API servers of a kubeadm HA cluster share etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from testbed.apiserver.admission import admit
from testbed.apiserver.budgets import Budgets
from testbed.apiserver.catalog import builtin_registry
from testbed.apiserver.certs import write_certificates
from testbed.apiserver.controllers import ControllerManager
from testbed.apiserver.discovery import api_group_list, api_versions, version_info
from testbed.apiserver.endpoints import ApiServerEndpoint
from testbed.apiserver.errors import ApiError, json_response, unauthorized
from testbed.apiserver.eviction import Disruptions
from testbed.apiserver.handlers import RestHandlers, no_such_path, read_json
from testbed.apiserver.injected import injected_error, needs_storage, storage_unavailable
from testbed.apiserver.kubelets import Kubelets
from testbed.apiserver.nodes import NodeSpec, build_node, default_nodes, heartbeat_all
from testbed.apiserver.openapi import group_version_document, root_document
from testbed.apiserver.registrations import Registrations
from testbed.apiserver.scenarios import create_manifests, parse_scenario, settled
from testbed.apiserver.store import ObjectStore, WatchEvent

log = logging.getLogger(__name__)
Object = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SEED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
FAULTS = ("fail_all_with_500", "hang")
# What kube-apiserver answers without credentials: the system:public-info-viewer ClusterRole is
# bound to system:unauthenticated (kubernetes.io/docs/reference/access-authn-authz/rbac/
# "Discovery roles"), which is how load balancers health-check it.
PUBLIC_PATHS = ("/healthz", "/readyz", "/livez", "/version", "/version/")
StatsSource = Callable[[], dict[str, Any]]


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
        readiness_delay: float = 0.5,
        termination_delay: float = 0.5,
        control_planes: Sequence[str] = ("cp-1",),
    ) -> None:
        """One API server per name in `control_planes`; the first takes `port`."""
        self.workdir = Path(workdir)
        self.endpoints = {
            name: ApiServerEndpoint(
                name,
                app_factory=self._app,
                version=version,
                host=host,
                port=port if position == 0 else 0,
                on_change=self._track_apiservers_down,
            )
            for position, name in enumerate(control_planes)
        }
        # Where clients should go (a load balancer in front of several); else the first's URL.
        self.front_url: str | None = None
        self._started = False
        self._max_apiservers_down = 0
        self._stats_sources: list[StatsSource] = []
        self.heartbeat_interval = heartbeat_interval
        self.registry = builtin_registry()
        self.objects = ObjectStore()
        self.token = ""
        self.ca_path = self.workdir / "ca.crt"
        self.fail_status: int | None = None  # every API request answers this code
        # False while etcd has no quorum: what needs storage fails, discovery still answers.
        self.storage_available = True
        self._max_unschedulable = 0
        self._released = asyncio.Event()
        self._released.set()
        self._heartbeat: asyncio.Task[None] | None = None
        self.disruptions = Disruptions(self.objects, Budgets(self.objects))
        self.kubelets = Kubelets(
            self.objects, readiness_delay=readiness_delay, termination_delay=termination_delay
        )
        self.controllers = ControllerManager(self.objects, self.kubelets, self.disruptions)
        self._serve_evictions()
        self._handlers = RestHandlers(
            registry=self.registry,
            store=self.objects,
            admit=admit,
            deleters={("v1", "pods"): self._delete_pod},
        )
        self.objects.on_write(self._track_unschedulable)
        self.registrations = Registrations()
        self.objects.on_write(self.registrations.track)
        self._seed(nodes if nodes is not None else default_nodes(version))

    @property
    def pdb_violations(self) -> int:
        """Times a healthy pod's eviction or DELETE left one of its budgets below desired."""
        return self.disruptions.violations

    @pdb_violations.setter
    def pdb_violations(self, value: int) -> None:
        self.disruptions.violations = value

    @property
    def readiness_delay(self) -> float:
        return self.kubelets.readiness_delay

    @readiness_delay.setter
    def readiness_delay(self, value: float) -> None:
        self.kubelets.readiness_delay = value

    @property
    def termination_delay(self) -> float:
        return self.kubelets.termination_delay

    @termination_delay.setter
    def termination_delay(self, value: float) -> None:
        self.kubelets.termination_delay = value

    @property
    def fail_all_with_500(self) -> bool:
        return self.fail_status == 500

    @fail_all_with_500.setter
    def fail_all_with_500(self, value: bool) -> None:
        self.fail_status = 500 if value else None

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
    def first(self) -> ApiServerEndpoint:
        return next(iter(self.endpoints.values()))

    @property
    def host(self) -> str:
        return self.first.host

    @property
    def port(self) -> int:
        return self.first.port

    @property
    def version(self) -> str:
        """The first control plane's API server version (the only one on a single control
        plane); `endpoints[name].version` is each one's."""
        return self.first.version

    @version.setter
    def version(self, value: str) -> None:
        self.first.version = value

    @property
    def url(self) -> str:
        return self.front_url or self.first.url

    def add_stats(self, source: StatsSource) -> None:
        """More counters for GET /testbed/stats, from what lives beside the API (etcd)."""
        self._stats_sources.append(source)

    async def start(self) -> None:
        certificates = write_certificates(self.workdir)
        self.ca_path = certificates.ca_path
        self.token = secrets.token_urlsafe(32)
        (self.workdir / "token").write_text(self.token)
        for endpoint in self.endpoints.values():
            endpoint.use_certificate(certificates.cert_path, certificates.key_path)
        await asyncio.gather(*(endpoint.start() for endpoint in self.endpoints.values()))
        self._started = True
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="apiserver-heartbeat")
        self.controllers.start()
        log.info("fake apiserver listening on %s", ", ".join(self._urls()))

    async def stop(self) -> None:
        await self.controllers.stop()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        self.hang = False
        self.objects.close_watches()
        self._started = False
        await asyncio.gather(*(endpoint.stop() for endpoint in self.endpoints.values()))

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

    async def load_scenario(self, source: Path | str | Object) -> None:
        """Apply a scenario (path, name in testbed/scenarios, or dict) to the started server:
        knobs first, then extra nodes, then its manifests; returns once everything is Ready."""
        if not self._started:
            raise RuntimeError("start() the server before loading a scenario")
        scenario = parse_scenario(source)
        if scenario.readiness_delay is not None:
            self.readiness_delay = scenario.readiness_delay
        if scenario.termination_delay is not None:
            self.termination_delay = scenario.termination_delay
        known = {node["metadata"]["name"] for node in self.objects.list("v1", "nodes")}
        for spec in scenario.nodes:
            if spec.name not in known:
                position = len(known) + 1
                self.objects.create("v1", "nodes", build_node(spec, position))
                known.add(spec.name)
        create_manifests(self.objects, self.registry, admit, scenario.manifests)
        await self.controllers.wait_until(
            lambda: settled(self.objects), timeout=scenario.settle_timeout
        )

    def stats(self) -> Object:
        stats: Object = {
            "pdb_violations": self.pdb_violations,
            "max_unschedulable_nodes": self._max_unschedulable,
            "unschedulable_nodes": self._count_unschedulable(),
            "max_apiservers_down": self._max_apiservers_down,
            "apiservers_down": self._count_apiservers_down(),
            "registered_untainted": self.registrations.registered_untainted,
        }
        for source in self._stats_sources:
            stats.update(source())
        return stats

    def _urls(self) -> list[str]:
        return [endpoint.url for endpoint in self.endpoints.values()]

    def _count_apiservers_down(self) -> int:
        if not self._started:
            return 0
        return sum(not endpoint.serving for endpoint in self.endpoints.values())

    def _track_apiservers_down(self) -> None:
        self._max_apiservers_down = max(self._max_apiservers_down, self._count_apiservers_down())

    def _seed(self, nodes: list[NodeSpec]) -> None:
        for namespace in SEED_NAMESPACES:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            body["spec"] = {"finalizers": ["kubernetes"]}
            body["status"] = {"phase": "Active"}
            self.objects.create("v1", "namespaces", body)
        for position, spec in enumerate(nodes, start=1):
            self.objects.create("v1", "nodes", build_node(spec, position))

    def _serve_evictions(self) -> None:
        pods = self.registry.lookup("v1", "pods")
        assert pods is not None
        with_eviction = dataclasses.replace(
            pods,
            actions={"eviction": self.disruptions.evict},
            action_kinds={"eviction": ("policy", "v1", "Eviction")},
        )
        self.registry.register(with_eviction)

    def _delete_pod(self, namespace: str | None, name: str, options: Object) -> Object:
        return self.disruptions.delete(namespace or "", name, options)

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

    def _app(self, endpoint: ApiServerEndpoint) -> web.Application:
        """The routes of one API server: its own version, the shared everything else."""

        async def version(_request: web.Request) -> web.Response:
            return json_response(version_info(endpoint.version))

        async def api(_request: web.Request) -> web.Response:
            return json_response(api_versions(f"{endpoint.host}:{endpoint.port}"))

        async def openapi_root(_request: web.Request) -> web.Response:
            return json_response(root_document(self.registry, endpoint.version))

        async def openapi_group_version(request: web.Request) -> web.Response:
            path = request.match_info["path"]
            api_version = path.split("/", 1)[1] if path.startswith(("api/", "apis/")) else ""
            document = group_version_document(self.registry, api_version, endpoint.version)
            if document is None:
                raise no_such_path()
            return json_response(document)

        async def probe(request: web.Request) -> web.Response:
            if request.path != "/livez" and not endpoint.storage_healthy:
                # kube-apiserver's words when its etcd check fails (verbose output aside)
                return web.Response(
                    status=500, text="[-]etcd failed: reason withheld\nhealthz check failed\n"
                )
            return web.Response(text="ok")

        app = web.Application(middlewares=[self._edge])
        app.router.add_get("/version", version)
        app.router.add_get("/version/", version)  # the python client asks with a slash
        app.router.add_get("/api", api)
        app.router.add_get("/apis", self._apis)
        app.router.add_get("/openapi/v3", openapi_root)
        app.router.add_get("/openapi/v3/{path:.+}", openapi_group_version)
        for path in ("/healthz", "/readyz", "/livez"):
            app.router.add_get(path, probe)
        app.router.add_get("/testbed/stats", self._stats)
        app.router.add_get("/testbed/faults", self._faults)
        app.router.add_post("/testbed/faults", self._faults)
        app.router.add_route("*", "/api/{tail:.+}", self._handlers.serve)
        app.router.add_route("*", "/apis/{tail:.+}", self._handlers.serve)
        return app

    @web.middleware
    async def _edge(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.method == "GET" and request.path in PUBLIC_PATHS:
                return await handler(request)  # anonymous, and what health checks see
            self._authenticate(request)
            if not request.path.startswith("/testbed/"):
                await self._released.wait()
                if self.fail_status is not None:
                    raise injected_error(self.fail_status)
                if not self.storage_available and needs_storage(request.path):
                    raise storage_unavailable()
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

    async def _apis(self, _request: web.Request) -> web.Response:
        return json_response(api_group_list(self.registry))

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
