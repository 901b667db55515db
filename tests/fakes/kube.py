"""An in-memory Kubernetes API behind the same interface as playbooks' KubeApi
(`playbooks.kube.Kubernetes`), for fast tests of steps and compensation, like
controller-runtime's `pkg/client/fake`. The testbed's API server is the full-fidelity tier.

What it models, as the real API server does:
- every write gives the object a new `metadata.resourceVersion` from one growing counter
  (etcd's revision), and a write that names a resourceVersion which is no longer current fails
  with 409 Conflict (optimistic concurrency: Kubernetes API conventions, "Concurrency Control
  and Consistency", https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#concurrency-control-and-consistency);
- the Eviction API (https://kubernetes.io/docs/concepts/scheduling-eviction/api-eviction/):
  404 for a pod that is not there, 429 Too Many Requests while a PodDisruptionBudget covering the
  pod allows no disruption, 500 when more than one PDB covers it; an accepted eviction deletes the
  pod and uses up one of its PDB's `disruptionsAllowed`;
- watches: ADDED for what exists, then ADDED/MODIFIED/DELETED as it changes, ending at
  `timeout_seconds`.

And what tests ask for on demand: another writer touching a node before our next writes
(`concurrent_writes`), evictions refused with 429 (`refuse_evictions`), any call failing with a
status (`fail`).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from playbooks.kube import KubeError, NodeView, node_view
from playbooks.pods import pdb_view, pod_view

Obj = dict[str, Any]
Change = Callable[[Obj], None]


def node(
    name: str,
    *,
    unschedulable: bool = False,
    taints: list[Obj] | None = None,
    ready: bool = True,
    kubelet: str = "v1.31.2",
    roles: tuple[str, ...] = (),
    internal_ip: str | None = "10.0.0.10",
) -> Obj:
    """An API-shaped Node, as `kubectl get node -o json` shows one."""
    labels = {f"node-role.kubernetes.io/{role}": "" for role in roles}
    addresses = [{"type": "InternalIP", "address": internal_ip}] if internal_ip else []
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": unschedulable, "taints": list(taints or [])},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"kubeletVersion": kubelet},
            "addresses": addresses,
        },
    }


def pod(
    name: str,
    *,
    node: str,
    namespace: str = "shop",
    labels: dict[str, str] | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "web-7f9"),
    empty_dir: bool = False,
) -> Obj:
    metadata: Obj = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if owner:
        metadata["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    volumes = [{"name": "scratch", "emptyDir": {}}] if empty_dir else []
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"nodeName": node, "volumes": volumes},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pdb(name: str, *, match: dict[str, str], allowed: int, namespace: str = "shop") -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": dict(match)}},
        "status": {"disruptionsAllowed": allowed},
    }


def hpa(name: str, *, minimum: int, maximum: int, namespace: str = "shop") -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minReplicas": minimum, "maxReplicas": maximum},
        "status": {"currentReplicas": minimum},
    }


@dataclass
class _Watch:
    kind: str  # "pods", "pdbs" or "node"
    node: str | None
    events: asyncio.Queue[tuple[str, Obj]] = field(default_factory=asyncio.Queue)


class FakeKube:
    """One cluster's API in memory. Seed it with `add`; read what happened from `calls`."""

    def __init__(self, *objects: Obj, version: str = "v1.31.2") -> None:
        self.version = version
        self.api_servers: dict[str, str] = {}
        self._revision = itertools.count(100)
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._uids = itertools.count(1)
        self._watches: list[_Watch] = []
        # Every call made, as (method, target): what a test checks was (not) done.
        self.calls: list[tuple[str, str]] = []
        self._concurrent: dict[str, list[Change]] = {}
        self._refused_evictions = 0
        self._failures: dict[str, list[int]] = {}
        self.closed = False
        for obj in objects:
            self.add(obj)

    # Seeding and inspecting -----------------------------------------------------------------

    def add(self, obj: Obj) -> Obj:
        stored = copy.deepcopy(obj)
        metadata = stored.setdefault("metadata", {})
        metadata.setdefault("uid", f"uid-{next(self._uids)}")
        self._write(stored)
        return copy.deepcopy(stored)

    def get(self, kind: str, name: str, namespace: str = "") -> Obj | None:
        found = self._objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def node(self, name: str) -> NodeView:
        found = self.get("Node", name)
        assert found is not None, f"no node {name}"
        return node_view(found)

    def edit(self, kind: str, name: str, change: Change, namespace: str = "") -> None:
        """Someone else's write (kubectl, a controller): applied now, with a new resourceVersion."""
        current = self._objects[(kind, namespace, name)]
        updated = copy.deepcopy(current)
        change(updated)
        self._write(updated)

    # On demand: what the real world sometimes does -------------------------------------------

    def concurrent_writes(self, node_name: str, *changes: Change) -> None:
        """Before each of our next writes to the node, another client writes it first (so a
        write naming the resourceVersion we read gets a 409, as it would on a real cluster)."""
        self._concurrent.setdefault(node_name, []).extend(changes)

    def refuse_evictions(self, times: int) -> None:
        """The next `times` evictions get 429, as while a PDB's status has not caught up."""
        self._refused_evictions += times

    def fail(self, method: str, status: int, *, times: int = 1) -> None:
        """The next `times` calls of `method` fail with this HTTP status."""
        self._failures.setdefault(method, []).extend([status] * times)

    # The Kubernetes interface ----------------------------------------------------------------

    async def close(self) -> None:
        self.closed = True

    async def get_node(self, name: str) -> NodeView | None:
        await self._called("get_node", name)
        found = self.get("Node", name)
        return node_view(found) if found else None

    async def list_nodes(self) -> list[NodeView]:
        await self._called("list_nodes", "")
        return [node_view(o) for (kind, _, _), o in sorted(self._objects.items()) if kind == "Node"]

    async def set_unschedulable(self, name: str, unschedulable: bool) -> NodeView:
        await self._called("set_unschedulable", name)
        self._others_write_first(name)
        return node_view(self._patch("Node", name, lambda n: _spec(n, unschedulable=unschedulable)))

    async def set_taints(self, name: str, taints: list[Obj], *, resource_version: str) -> NodeView:
        await self._called("set_taints", name)
        self._others_write_first(name)
        current = self._existing("Node", name, "")
        if current["metadata"]["resourceVersion"] != resource_version:
            raise KubeError(
                f"the Kubernetes API answered 409 Conflict while patching taints of {name}: "
                f'Operation cannot be fulfilled on nodes "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                status=409,
            )
        patched = self._patch("Node", name, lambda n: _spec(n, taints=copy.deepcopy(taints)))
        return node_view(patched)

    async def add_labels(self, name: str, labels: dict[str, str]) -> NodeView:
        await self._called("add_labels", name)
        patched = self._patch("Node", name, lambda n: n["metadata"]["labels"].update(labels))
        return node_view(patched)

    async def server_version(self) -> str:
        await self._called("server_version", "")
        return self.version

    async def server_version_at(self, url: str) -> str:
        """`api_servers` maps an endpoint to its own version; any other answers `version`."""
        await self._called("server_version_at", url)
        return self.api_servers.get(url, self.version)

    async def pods_on(self, node: str) -> list[Obj]:
        await self._called("pods_on", node)
        return [copy.deepcopy(o) for o in self._pods() if o["spec"].get("nodeName") == node]

    async def get_pod(self, namespace: str, name: str) -> Obj | None:
        await self._called("get_pod", f"{namespace}/{name}")
        return self.get("Pod", name, namespace)

    async def list_pdbs(self) -> list[Obj]:
        await self._called("list_pdbs", "")
        return [copy.deepcopy(o) for (kind, _, _), o in self._objects.items() if kind == "PDB"]

    async def evict(self, namespace: str, name: str) -> None:
        await self._called("evict", f"{namespace}/{name}")
        doing = f"evicting pod {namespace}/{name}"
        found = self._objects.get(("Pod", namespace, name))
        if found is None:
            raise KubeError(f"the Kubernetes API answered 404 Not Found while {doing}", status=404)
        covering = [o for (k, _, _), o in self._objects.items() if k == "PDB" and _covers(o, found)]
        if len(covering) > 1:
            raise KubeError(f"the Kubernetes API answered 500 while {doing}", status=500)
        blocked = any(o["status"]["disruptionsAllowed"] <= 0 for o in covering)
        if self._refused_evictions > 0 or blocked:
            self._refused_evictions = max(0, self._refused_evictions - 1)
            raise KubeError(
                f"the Kubernetes API answered 429 Too Many Requests while {doing}", status=429
            )
        for budget in covering:
            key = budget["metadata"]
            self.edit("PDB", key["name"], _use_one_disruption, key["namespace"])
        self._delete("Pod", namespace, name)

    async def watch_pdbs(self, *, timeout_seconds: int = 60) -> AsyncIterator[tuple[str, Obj]]:
        async for event in self._follow(_Watch("pdbs", None), timeout_seconds):
            yield event

    async def watch_pods_on(
        self, node: str, *, timeout_seconds: int = 60
    ) -> AsyncIterator[tuple[str, Obj]]:
        async for event in self._follow(_Watch("pods", node), timeout_seconds):
            yield event

    async def watch_node(
        self, name: str, *, timeout_seconds: int = 60
    ) -> AsyncIterator[tuple[str, Obj]]:
        async for event in self._follow(_Watch("node", name), timeout_seconds):
            yield event

    async def get_hpa(self, namespace: str, name: str) -> Obj | None:
        await self._called("get_hpa", f"{namespace}/{name}")
        return self.get("HPA", name, namespace)

    async def set_hpa_bounds(self, namespace: str, name: str, *, minimum: int, maximum: int) -> Obj:
        await self._called("set_hpa_bounds", f"{namespace}/{name}")
        if minimum > maximum:  # the API server's validation of autoscaling/v2
            raise KubeError(
                f"the Kubernetes API answered 422 Unprocessable Entity while patching HPA "
                f"{namespace}/{name}: minReplicas must be less than or equal to maxReplicas",
                status=422,
            )
        return self._patch(
            "HPA",
            name,
            lambda h: h["spec"].update(minReplicas=minimum, maxReplicas=maximum),
            namespace,
        )

    # Inside ---------------------------------------------------------------------------------

    async def _called(self, method: str, target: str) -> None:
        # A real call goes over the network: other tasks (watches) run meanwhile.
        await asyncio.sleep(0)
        self.calls.append((method, target))
        failures = self._failures.get(method)
        if failures:
            status = failures.pop(0)
            raise KubeError(
                f"the Kubernetes API answered {status} ({method} {target})", status=status
            )

    def _others_write_first(self, node_name: str) -> None:
        pending = self._concurrent.get(node_name)
        if pending:
            self.edit("Node", node_name, pending.pop(0))

    def _existing(self, kind: str, name: str, namespace: str) -> Obj:
        found = self._objects.get((kind, namespace, name))
        if found is None:
            raise KubeError(
                f"the Kubernetes API answered 404 Not Found ({kind} {name})", status=404
            )
        return found

    def _patch(self, kind: str, name: str, change: Change, namespace: str = "") -> Obj:
        updated = copy.deepcopy(self._existing(kind, name, namespace))
        change(updated)
        return copy.deepcopy(self._write(updated))

    def _write(self, obj: Obj) -> Obj:
        kind = _kind(obj)
        metadata = obj["metadata"]
        key = (kind, metadata.get("namespace", ""), metadata["name"])
        event = "MODIFIED" if key in self._objects else "ADDED"
        metadata["resourceVersion"] = str(next(self._revision))
        self._objects[key] = obj
        self._announce(kind, event, obj)
        return obj

    def _delete(self, kind: str, namespace: str, name: str) -> None:
        gone = self._objects.pop((kind, namespace, name))
        gone["metadata"]["resourceVersion"] = str(next(self._revision))
        self._announce(kind, "DELETED", gone)

    def _pods(self) -> list[Obj]:
        return [o for (kind, _, _), o in self._objects.items() if kind == "Pod"]

    def _announce(self, kind: str, event: str, obj: Obj) -> None:
        for watch in self._watches:
            if _watched(watch, kind, obj):
                watch.events.put_nowait((event, copy.deepcopy(obj)))

    async def _follow(self, watch: _Watch, timeout_seconds: int) -> AsyncIterator[tuple[str, Obj]]:
        await self._called(f"watch_{watch.kind}", watch.node or "")
        # A watch without a resourceVersion starts with a synthetic ADDED event for every
        # object that exists ("Semantics for watch", Kubernetes API concepts:
        # https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-watch).
        for (kind, _, _), obj in list(self._objects.items()):
            if _watched(watch, kind, obj):
                watch.events.put_nowait(("ADDED", copy.deepcopy(obj)))
        self._watches.append(watch)
        loop = asyncio.get_running_loop()
        ends = loop.time() + timeout_seconds
        try:
            while (left := ends - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        yield await watch.events.get()
                except TimeoutError:
                    return
        finally:
            self._watches.remove(watch)


def _watched(watch: _Watch, kind: str, obj: Obj) -> bool:
    if watch.kind == "pdbs":
        return kind == "PDB"
    if watch.kind == "node":
        return kind == "Node" and obj["metadata"]["name"] == watch.node
    return kind == "Pod" and obj["spec"].get("nodeName") == watch.node


def _kind(obj: Obj) -> str:
    kind = str(obj.get("kind", ""))
    return {"PodDisruptionBudget": "PDB", "HorizontalPodAutoscaler": "HPA"}.get(kind, kind)


def _spec(node_obj: Obj, **fields: Any) -> None:
    node_obj.setdefault("spec", {}).update(fields)


def _covers(budget: Obj, pod_obj: Obj) -> bool:
    return pdb_view(budget).covers(pod_view(pod_obj))


def _use_one_disruption(budget: Obj) -> None:
    budget["status"]["disruptionsAllowed"] -= 1
