"""What playbooks may ask of one cluster's API and how they see its answers: the seam between
them and the cluster. playbooks/kube.py `KubeApi` is the real one (and re-exports these);
tests/fakes/kube.py is an in-memory one for fast tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from playbooks.errors import OperationError

Obj = dict[str, Any]
TRANSIENT = frozenset({429, 500, 502, 503, 504})


class KubeError(OperationError):
    """The Kubernetes API refused or could not be reached; the message is for people."""

    def __init__(
        self, message: str, *, status: int | None = None, body: str = "", transient: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        # Worth another try soon: a 429/5xx answer, a refused connection (an API server
        # restarting behind the load balancer).
        self.transient = transient or status in TRANSIENT


@dataclass(frozen=True)
class NodeView:
    name: str
    unschedulable: bool
    ready: bool
    kubelet_version: str
    roles: tuple[str, ...]
    taints: tuple[Obj, ...] = field(default=())
    internal_ip: str | None = None
    resource_version: str = ""
    pressure: tuple[str, ...] = ()


class Kubernetes(Protocol):
    """What playbooks may ask of one cluster's API: the seam between them and the cluster.

    `KubeApi` is the real one; tests/fakes/kube.py is an in-memory one for fast tests.
    """

    async def close(self) -> None: ...
    async def get_node(self, name: str) -> NodeView | None: ...
    async def list_nodes(self) -> list[NodeView]: ...
    async def set_unschedulable(self, name: str, unschedulable: bool) -> NodeView: ...
    async def set_taints(
        self, name: str, taints: list[Obj], *, resource_version: str
    ) -> NodeView: ...
    async def add_labels(self, name: str, labels: dict[str, str]) -> NodeView: ...
    async def server_version(self) -> str: ...
    async def server_version_at(self, url: str) -> str: ...
    async def pods_on(self, node: str) -> list[Obj]: ...
    async def get_pod(self, namespace: str, name: str) -> Obj | None: ...
    async def list_pdbs(self) -> list[Obj]: ...
    async def evict(self, namespace: str, name: str) -> None: ...
    def watch_pdbs(self, *, timeout_seconds: int = 60) -> AsyncIterator[tuple[str, Obj]]: ...
    def watch_pods_on(
        self, node: str, *, timeout_seconds: int = 60
    ) -> AsyncIterator[tuple[str, Obj]]: ...
    def watch_node(
        self, name: str, *, timeout_seconds: int = 60
    ) -> AsyncIterator[tuple[str, Obj]]: ...
    async def get_hpa(self, namespace: str, name: str) -> Obj | None: ...
    async def set_hpa_bounds(
        self, namespace: str, name: str, *, minimum: int, maximum: int
    ) -> Obj: ...


def node_view(node: Obj) -> NodeView:
    """Read the fields kubegate cares about from an API-shaped Node."""
    metadata = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    labels = metadata.get("labels") or {}
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    pressure = tuple(
        c["type"] for c in conditions if c.get("type") != "Ready" and c.get("status") == "True"
    )
    roles = tuple(
        sorted(key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/"))
    )
    addresses = status.get("addresses") or []
    internal_ip = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    return NodeView(
        name=metadata.get("name", ""),
        unschedulable=bool(spec.get("unschedulable")),
        ready=ready,
        kubelet_version=(status.get("nodeInfo") or {}).get("kubeletVersion", ""),
        roles=roles,
        taints=tuple(spec.get("taints") or ()),
        internal_ip=internal_ip,
        resource_version=str(metadata.get("resourceVersion", "")),
        pressure=pressure,
    )
