"""Small builders for the snapshots playbooks decide from: nodes and pods as the API shows them."""

from __future__ import annotations

from typing import Any

from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.pods import DrainSelection, pod_view, select_for_drain

INVENTORY = Inventory()


def node(
    name: str,
    *,
    version: str = "v1.31.2",
    control_plane: bool = False,
    ready: bool = True,
    cordoned: bool = False,
    ip: str | None = "default",
) -> NodeView:
    number = sum(map(ord, name)) % 200 + 10
    return NodeView(
        name=name,
        unschedulable=cordoned,
        ready=ready,
        kubelet_version=version,
        roles=("control-plane",) if control_plane else (),
        internal_ip=f"10.0.0.{number}" if ip == "default" else ip,
    )


def pod(
    name: str,
    *,
    owner: tuple[str, str] | None = ("ReplicaSet", "web-7f9"),
    empty_dir: bool = False,
    ns: str = "shop",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": {}}
    if owner:
        metadata["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    volumes = [{"name": "scratch", "emptyDir": {}}] if empty_dir else []
    return {"metadata": metadata, "spec": {"volumes": volumes}, "status": {"phase": "Running"}}


def drain_of(*pods: dict[str, Any]) -> DrainSelection:
    return select_for_drain([pod_view(p) for p in pods])


CLUSTER = [
    node("cp-1", control_plane=True),
    node("worker-1"),
    node("worker-2"),
    node("worker-3"),
]
