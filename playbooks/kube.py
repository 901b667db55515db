"""The Kubernetes API as the playbooks need it: a thin async wrapper over kubernetes.aio.

Answers are turned into small typed views (NodeView) and API failures into KubeError with
words an operator can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes.aio import client as kube_client
from kubernetes.aio import config as kube_config
from kubernetes.aio.client.exceptions import ApiException

STRATEGIC_MERGE = "application/strategic-merge-patch+json"


class KubeError(Exception):
    """The Kubernetes API refused or could not be reached; the message is for people."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class NodeView:
    name: str
    unschedulable: bool
    ready: bool
    kubelet_version: str
    roles: tuple[str, ...]
    taints: tuple[dict[str, Any], ...] = field(default=())
    internal_ip: str | None = None


class KubeApi:
    """One cluster's API, opened from a kubeconfig file and context."""

    def __init__(self, api_client: kube_client.ApiClient) -> None:
        self._api_client = api_client
        self._core = kube_client.CoreV1Api(api_client)

    @classmethod
    async def connect(cls, *, kubeconfig: Path | None, context: str | None) -> KubeApi:
        configuration = kube_client.Configuration()
        try:
            await kube_config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (kube_config.ConfigException, OSError) as error:
            raise KubeError(
                f"cannot load kubeconfig {kubeconfig or '~/.kube/config'}: {error}"
            ) from error
        return cls(kube_client.ApiClient(configuration=configuration))

    async def close(self) -> None:
        await self._api_client.close()

    async def get_node(self, name: str) -> NodeView | None:
        try:
            node = await self._core.read_node(name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise _kube_error(error, f"reading node {name}") from error
        except aiohttp.ClientError as error:
            raise KubeError(
                f"cannot reach the Kubernetes API reading node {name}: {error}"
            ) from error
        return node_view(node.to_dict())

    async def list_nodes(self) -> list[NodeView]:
        try:
            nodes = await self._core.list_node()
        except ApiException as error:
            raise _kube_error(error, "listing nodes") from error
        except aiohttp.ClientError as error:
            raise KubeError(f"cannot reach the Kubernetes API listing nodes: {error}") from error
        return [node_view(item.to_dict()) for item in nodes.items or []]

    async def set_unschedulable(self, name: str, unschedulable: bool) -> NodeView:
        try:
            node = await self._core.patch_node(
                name, {"spec": {"unschedulable": unschedulable}}, _content_type=STRATEGIC_MERGE
            )
        except ApiException as error:
            raise _kube_error(error, f"patching node {name}") from error
        except aiohttp.ClientError as error:
            raise KubeError(
                f"cannot reach the Kubernetes API patching node {name}: {error}"
            ) from error
        return node_view(node.to_dict())


def node_view(node: dict[str, Any]) -> NodeView:
    """Read the fields kubegate cares about from a Node (as the client's to_dict gives it)."""
    metadata = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    labels = metadata.get("labels") or {}
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    roles = tuple(
        sorted(key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/"))
    )
    addresses = status.get("addresses") or []
    internal_ip = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    node_info = status.get("node_info") or status.get("nodeInfo") or {}
    return NodeView(
        name=metadata.get("name", ""),
        unschedulable=bool(spec.get("unschedulable")),
        ready=ready,
        kubelet_version=node_info.get("kubelet_version") or node_info.get("kubeletVersion") or "",
        roles=roles,
        taints=tuple(spec.get("taints") or ()),
        internal_ip=internal_ip,
    )


def _kube_error(error: ApiException, doing: str) -> KubeError:
    reason = error.reason or ""
    return KubeError(
        f"the Kubernetes API answered {error.status} {reason} while {doing}".strip(),
        status=error.status,
    )
