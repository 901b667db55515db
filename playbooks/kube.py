"""The Kubernetes API as the playbooks need it: a thin async wrapper over kubernetes.aio.

Objects come back as plain API-shaped dicts (camelCase, as kubectl shows them) and failures
as KubeError with words an operator can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from kubernetes.aio import client as kube_client
from kubernetes.aio import config as kube_config
from kubernetes.aio.client.exceptions import ApiException
from yarl import URL

# What playbooks see of a cluster's API lives in kube_seam; re-exported here, its one real source.
from playbooks.kube_seam import KubeError as KubeError
from playbooks.kube_seam import Kubernetes as Kubernetes
from playbooks.kube_seam import NodeView as NodeView
from playbooks.kube_seam import Obj as Obj
from playbooks.kube_seam import node_view as node_view

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# The client's own default is 5 minutes: a hanging API server would hold a step, and every
# answer waiting on the cluster, that long.
REQUEST_TIMEOUT = 10.0
RETRY_BACKOFF = (0.25, 0.5, 1.0, 2.0)  # seconds before each new attempt after a transient answer
MAX_IN_FLIGHT = 8  # requests to one cluster's API at once: a burst queues here, not on the server


async def build_api_classes() -> None:
    """Builds the Kubernetes client's API classes once, with no cluster contacted.

    The first `CoreV1Api(...)` of a process builds every method's pydantic validator (~70 000
    long-lived objects, measured with `gc.get_objects`); the client builds them lazily, so without
    this the first command to read a cluster builds them after start-up, and every later full
    garbage collection walks them (30-50 ms, a pause for every Slack ack in flight)."""
    api_client = kube_client.ApiClient(configuration=kube_client.Configuration())
    try:
        kube_client.CoreV1Api(api_client)
        kube_client.PolicyV1Api(api_client)
        kube_client.AutoscalingV2Api(api_client)
    finally:
        await api_client.close()


def proxy_from_environment_once(configuration: kube_client.Configuration) -> None:
    """HTTPS_PROXY / NO_PROXY for the API server, read now rather than on every request.

    The client's HTTP session trusts the environment, and aiohttp then looks up the proxy
    variables and ~/.netrc in a worker thread for every request: two thread hand-offs per API
    call on the loop that also acks Slack. A kubeconfig's `proxy-url` still comes first; a
    proxy's credentials from the environment go along as kubectl sends them."""
    if not configuration.proxy:
        with contextlib.suppress(LookupError):
            proxy, auth = get_env_proxy_for_url(URL(configuration.host))
            configuration.proxy = str(proxy)
            if auth is not None:
                configuration.proxy_headers = {"Proxy-Authorization": auth.encode()}
    configuration.client_session_kwargs = {"trust_env": False}


class KubeApi:
    """One cluster's API, opened from a kubeconfig file and context."""

    def __init__(
        self, api_client: kube_client.ApiClient, *, request_timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self._api_client = api_client
        self.request_timeout = request_timeout
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.core = kube_client.CoreV1Api(api_client)
        self.policy = kube_client.PolicyV1Api(api_client)
        self.autoscaling = kube_client.AutoscalingV2Api(api_client)

    @classmethod
    async def connect(
        cls,
        *,
        kubeconfig: Path | None,
        context: str | None,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> KubeApi:
        configuration = kube_client.Configuration()
        try:
            await kube_config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (kube_config.ConfigException, OSError) as error:
            where = kubeconfig or "~/.kube/config"
            raise KubeError(f"cannot load kubeconfig {where}: {error}") from error
        proxy_from_environment_once(configuration)
        api_client = kube_client.ApiClient(configuration=configuration)
        return cls(api_client, request_timeout=request_timeout)

    async def close(self) -> None:
        await self._api_client.close()

    async def call(
        self, request: Callable[[], Awaitable[Any]], doing: str, *, retry: bool = True
    ) -> Obj:
        """One API call; the answer as an API-shaped dict, failures as KubeError.

        Each attempt has `request_timeout` seconds (a hanging API server fails the call, never
        the whole process); a transient answer (429, 5xx, connection refused) is tried again
        with backoff before the call fails, unless `retry` is off (an eviction: its 429 means
        a PodDisruptionBudget said not now, which the drain itself handles)."""
        for delay in [*RETRY_BACKOFF, None] if retry else [None]:
            try:
                return await self._attempt(request, doing)
            except KubeError as error:
                if delay is None or not error.transient:
                    raise
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt raises")

    async def _attempt(self, request: Callable[[], Awaitable[Any]], doing: str) -> Obj:
        """Calls are made `_without_preload_content`: the JSON is parsed once, straight to
        dicts, instead of into the client's models and back (most of the CPU a listing costs)."""
        try:
            async with asyncio.timeout(self.request_timeout), self._in_flight:
                answer = await request()
                if isinstance(answer, aiohttp.ClientResponse):
                    return await _json_answer(answer, doing)
        except TimeoutError as error:
            raise KubeError(
                f"the Kubernetes API did not answer within {self.request_timeout:g} s while {doing}"
            ) from error
        except ApiException as error:
            reason = f"{error.status} {error.reason or ''}".strip()
            raise KubeError(
                f"the Kubernetes API answered {reason} while {doing}",
                status=error.status,
                body=str(error.body or ""),
            ) from error
        except aiohttp.ClientError as error:
            raise KubeError(
                f"cannot reach the Kubernetes API while {doing}: {error}",
                transient=isinstance(error, aiohttp.ClientConnectionError),
            ) from error
        result: Obj = self._api_client.sanitize_for_serialization(answer) or {}
        return result

    async def find(self, request: Callable[[], Awaitable[Any]], doing: str) -> Obj | None:
        """Like `call`, but a 404 is an answer (None), not an error."""
        try:
            return await self.call(request, doing)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    # Nodes ----------------------------------------------------------------------------------

    async def get_node(self, name: str) -> NodeView | None:
        node = await self.find(
            lambda: self.core.read_node_without_preload_content(name), f"reading node {name}"
        )
        return node_view(node) if node else None

    async def list_nodes(self) -> list[NodeView]:
        nodes = await self.call(
            lambda: self.core.list_node_without_preload_content(), "listing nodes"
        )
        return [node_view(item) for item in nodes.get("items") or []]

    async def set_unschedulable(self, name: str, unschedulable: bool) -> NodeView:
        patched = await self.call(
            lambda: self.core.patch_node_without_preload_content(
                name, {"spec": {"unschedulable": unschedulable}}, _content_type=STRATEGIC_MERGE
            ),
            f"patching node {name}",
        )
        return node_view(patched)

    async def set_taints(self, name: str, taints: list[Obj], *, resource_version: str) -> NodeView:
        """Replace the node's taints whole; the resourceVersion makes a concurrent edit a 409."""
        body = {"metadata": {"resourceVersion": resource_version}, "spec": {"taints": taints}}
        patched = await self.call(
            lambda: self.core.patch_node_without_preload_content(
                name, body, _content_type=MERGE_PATCH
            ),
            f"patching taints of {name}",
        )
        return node_view(patched)

    async def add_labels(self, name: str, labels: dict[str, str]) -> NodeView:
        patched = await self.call(
            lambda: self.core.patch_node_without_preload_content(
                name, {"metadata": {"labels": labels}}, _content_type=MERGE_PATCH
            ),
            f"labelling node {name}",
        )
        return node_view(patched)

    async def server_version(self) -> str:
        """The API server's gitVersion, e.g. `v1.31.2`: what kubelets must never outrun."""
        answer = await self.call(lambda: self._get_version(), "reading the API server version")
        return str(answer.get("gitVersion") or "")

    async def server_version_at(self, url: str) -> str:
        """One API server's own gitVersion, asked at its own endpoint (`https://10.0.0.11:6443`)
        with this cluster's credentials: behind a load balancer, each may differ mid-upgrade."""
        answer = await self.call(
            lambda: self._get_version(url), f"reading the API server version at {url}"
        )
        return str(answer.get("gitVersion") or "")

    async def _get_version(self, host: str | None = None) -> Any:
        # GET /version as kubectl asks it: the generated VersionApi asks for `/version/`,
        # which not every server or proxy in front of one routes.
        client = self._api_client
        request = await client.param_serialize(
            method="GET",
            resource_path="/version",
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _host=host,
        )
        response = await client.call_api(*request)
        await response.read()
        types = {"200": "VersionInfo"}
        return client.response_deserialize(response_data=response, response_types_map=types).data

    # Pods, PDBs, evictions -------------------------------------------------------------------

    async def pods_on(self, node: str) -> list[Obj]:
        pods = await self.call(
            lambda: self.core.list_pod_for_all_namespaces_without_preload_content(
                field_selector=f"spec.nodeName={node}"
            ),
            f"listing pods on {node}",
        )
        return list(pods.get("items") or [])

    async def get_pod(self, namespace: str, name: str) -> Obj | None:
        return await self.find(
            lambda: self.core.read_namespaced_pod_without_preload_content(name, namespace),
            f"reading pod {namespace}/{name}",
        )

    async def list_pdbs(self) -> list[Obj]:
        pdbs = await self.call(
            lambda: (
                self.policy.list_pod_disruption_budget_for_all_namespaces_without_preload_content()
            ),
            "listing PodDisruptionBudgets",
        )
        return list(pdbs.get("items") or [])

    async def evict(self, namespace: str, name: str) -> None:
        """POST the policy/v1 Eviction; 429 (a PDB says not now) and 500 surface as KubeError."""
        body = kube_client.V1Eviction(
            metadata=kube_client.V1ObjectMeta(name=name, namespace=namespace)
        )
        await self.call(
            lambda: self.core.create_namespaced_pod_eviction_without_preload_content(
                name, namespace, body
            ),
            f"evicting pod {namespace}/{name}",
            retry=False,
        )

    async def watch_pdbs(self, *, timeout_seconds: int = 60) -> AsyncIterator[tuple[str, Obj]]:
        async for kind, obj in self._watch(
            self.policy.list_pod_disruption_budget_for_all_namespaces_without_preload_content,
            timeout_seconds,
        ):
            yield kind, obj

    async def watch_pods_on(
        self, node: str, *, timeout_seconds: int = 60
    ) -> AsyncIterator[tuple[str, Obj]]:
        async for kind, obj in self._watch(
            self.core.list_pod_for_all_namespaces_without_preload_content,
            timeout_seconds,
            field_selector=f"spec.nodeName={node}",
        ):
            yield kind, obj

    async def watch_node(
        self, name: str, *, timeout_seconds: int = 60
    ) -> AsyncIterator[tuple[str, Obj]]:
        async for kind, obj in self._watch(
            self.core.list_node_without_preload_content,
            timeout_seconds,
            field_selector=f"metadata.name={name}",
        ):
            yield kind, obj

    async def _watch(
        self, list_call: Callable[..., Awaitable[Any]], timeout_seconds: int, **kwargs: Any
    ) -> AsyncIterator[tuple[str, Obj]]:
        """A watch read straight off the stream, each event's JSON parsed once into dicts. The
        client's `Watch()` would build an API client of its own (a TLS context on the event
        loop) for every watch and turn every event into the client's models and back."""
        try:
            response = await list_call(watch=True, timeout_seconds=timeout_seconds, **kwargs)
        except ApiException as error:
            raise KubeError(
                f"the Kubernetes API answered {error.status} to a watch", status=error.status
            ) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise KubeError(f"a watch on the Kubernetes API broke: {error}") from error
        try:
            if response.status >= 400:
                raise KubeError(
                    f"the Kubernetes API answered {response.status} to a watch",
                    status=response.status,
                )
            async for event in _watch_events(response):
                yield event
        finally:
            response.release()

    # HPAs -----------------------------------------------------------------------------------

    async def get_hpa(self, namespace: str, name: str) -> Obj | None:
        return await self.find(
            lambda: (
                self.autoscaling.read_namespaced_horizontal_pod_autoscaler_without_preload_content(
                    name, namespace
                )
            ),
            f"reading HPA {namespace}/{name}",
        )

    async def set_hpa_bounds(self, namespace: str, name: str, *, minimum: int, maximum: int) -> Obj:
        """Both bounds in one patch, so the HPA is never seen with one bound changed."""
        body = {"spec": {"minReplicas": minimum, "maxReplicas": maximum}}
        return await self.call(
            lambda: (
                self.autoscaling.patch_namespaced_horizontal_pod_autoscaler_without_preload_content(
                    name, namespace, body, _content_type=MERGE_PATCH
                )
            ),
            f"patching HPA {namespace}/{name}",
        )


async def _watch_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Obj]]:
    """The events of a watch response, one JSON object per line, until the server ends it.
    An ERROR event (410 Gone: the resource version is too old) ends the watch as the answer
    it carries (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes)."""
    try:
        while line := await response.content.readline():
            if not line.strip():
                continue
            event = json.loads(line)
            kind, obj = str(event.get("type")), dict(event.get("object") or {})
            if kind == "ERROR":
                status = obj.get("code")
                raise KubeError(
                    f"the Kubernetes API answered {status} to a watch: {obj.get('message', '')}",
                    status=status if isinstance(status, int) else None,
                )
            yield kind, obj
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise KubeError(f"a watch on the Kubernetes API broke: {error}") from error


async def _json_answer(response: aiohttp.ClientResponse, doing: str) -> Obj:
    try:
        body = await response.read()
    finally:
        response.release()
    if response.status >= 400:
        reason = f"{response.status} {response.reason or ''}".strip()
        raise KubeError(
            f"the Kubernetes API answered {reason} while {doing}",
            status=response.status,
            body=body.decode(errors="replace"),
        )
    answer: Obj = json.loads(body) if body else {}
    return answer
