"""Each control plane's own API server version, read at its own endpoint: behind a load balancer
the one that answers `/version` is any of them, and mid-upgrade they differ. The skew rules
are about the oldest (kubernetes.io/releases/version-skew-policy)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from playbooks.base import ClusterHandle, PlanError
from playbooks.errors import OperationError
from playbooks.inventory import Inventory
from playbooks.kube import NodeView

# The name the single answer goes by when no control-plane Node is known.
THE_API_SERVER = "the API server"
POLL_INTERVAL_S = 0.25


def endpoints(inventory: Inventory, nodes: list[NodeView]) -> dict[str, str | None]:
    """Control plane -> its own API server's URL (None: no address), in the inventory's order.
    Empty when there is one control plane and no endpoint configured: then the cluster's own
    address reaches that one, with no load balancer choosing."""
    control_planes = inventory.control_plane_order(nodes)
    configured = [cp for cp in control_planes if cp.name in inventory.nodes]
    explicit = any(inventory.nodes[cp.name].api_server for cp in configured)
    if len(control_planes) <= 1 and not explicit:
        return {}
    return {cp.name: inventory.api_server_of(cp) for cp in control_planes}


async def read_api_servers(cluster: ClusterHandle, nodes: list[NodeView]) -> dict[str, str]:
    """Control plane -> the version its own API server reports (`v1.31.2`)."""
    where = endpoints(cluster.inventory, nodes)
    if not where:
        control_planes = cluster.inventory.control_plane_order(nodes)
        name = control_planes[0].name if control_planes else THE_API_SERVER
        return {name: await cluster.kube.server_version()}
    missing = [name for name, url in where.items() if url is None]
    if missing:
        raise PlanError(
            f"kubegate cannot tell where {missing[0]}'s own API server answers: it has no "
            f"InternalIP. Set `api_server` for {missing[0]} in the cluster's inventory."
        )
    # Asked all at once: each answers for itself, and a rolling upgrade asks before every node.
    answers = await asyncio.gather(
        *(version_at(cluster, name, str(url)) for name, url in where.items())
    )
    return dict(zip(where, answers, strict=True))


async def version_at(cluster: ClusterHandle, name: str, url: str) -> str:
    try:
        return await cluster.kube.server_version_at(url)
    except OperationError as error:
        raise PlanError(
            f"kubegate could not read {name}'s API server version at {url} ({error.message}); "
            "nothing was changed. Every API server must answer before an upgrade: check it, "
            f"or set `api_server` for {name} in the cluster's inventory."
        ) from error


def described(api_servers: dict[str, str]) -> str:
    """`API servers cp-1 v1.32.0, cp-2 v1.31.2`, or `API server v1.31.2` when there is one."""
    if len(api_servers) == 1:
        return f"API server {next(iter(api_servers.values()))}"
    return "API servers " + ", ".join(f"{name} {v}" for name, v in api_servers.items())


async def own_api_server_version(cluster: ClusterHandle, node: str) -> str | None:
    """What `node`'s own API server reports now; None while it does not answer (restarting:
    on a single control plane the node list below goes through that very API server)."""
    try:
        nodes = await cluster.kube.list_nodes()
        url = endpoints(cluster.inventory, nodes).get(node)
        if url is None:
            return await cluster.kube.server_version()
        return await cluster.kube.server_version_at(url)
    except OperationError:
        return None


async def wait_for_api_server(
    cluster: ClusterHandle,
    node: str,
    version: str,
    *,
    timeout: float,
    say: Callable[[str], Awaitable[None]] | None = None,
) -> str | None:
    """Poll until `node`'s own API server serves `version` (kubeadm's new manifest makes the
    kubelet restart it); what it last said at the timeout, or None once it is there. While it
    does not answer (on a single control plane, the whole API), `say` hears it once."""
    deadline, told = time.monotonic() + timeout, False
    while True:
        found = await own_api_server_version(cluster, node)
        if found == version:
            return None
        if found is None and not told and say is not None:
            told = True
            await say(f"{node}: waiting for the API server to come back after its restart")
        if time.monotonic() >= deadline:
            return found or "no answer"
        await asyncio.sleep(POLL_INTERVAL_S)
