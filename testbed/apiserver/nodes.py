"""Nodes as a kubeadm cluster's kubelets would register them, their `kubectl get` columns, and
the heartbeat that keeps bumping their resourceVersion.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from testbed.apiserver.kinds import AGE_COLUMN, NAME_COLUMN, TableColumn
from testbed.apiserver.store import ObjectStore
from testbed.apiserver.timestamps import rfc3339

Object = dict[str, Any]
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
_PRESSURES = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: Literal["control-plane", "worker"] = "worker"
    kubelet_version: str = "v1.31.2"
    address: str | None = None  # None: 127.0.10.<position in the node list, from 1>


def default_nodes(kubelet_version: str = "v1.31.2") -> list[NodeSpec]:
    control_plane = NodeSpec("cp-1", "control-plane", kubelet_version)
    workers = [NodeSpec(f"worker-{i}", "worker", kubelet_version) for i in (1, 2, 3)]
    return [control_plane, *workers]


def _condition(kind: str, status: str, reason: str, message: str, now: str) -> Object:
    return {
        "type": kind,
        "status": status,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def _node_status(spec: NodeSpec, address: str, now: str) -> Object:
    resources = {
        "cpu": "4",
        "memory": "8148564Ki",
        "pods": "110",
        "ephemeral-storage": "50620216Ki",
    }
    conditions = [_condition(kind, "False", why, text, now) for kind, why, text in _PRESSURES]
    conditions.append(
        _condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", now)
    )
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": address},
            {"type": "Hostname", "address": spec.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": uuid.uuid4().hex,
            "systemUUID": str(uuid.uuid4()),
            "bootID": str(uuid.uuid4()),
            "kernelVersion": "6.1.0-28-amd64",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": "containerd://1.7.22",
            "kubeletVersion": spec.kubelet_version,
            "kubeProxyVersion": spec.kubelet_version,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def build_node(spec: NodeSpec, position: int) -> Object:
    """The Node object for `spec`; `position` (from 1) picks default address and pod CIDR."""
    now = rfc3339()
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
    }
    pod_cidr = f"10.244.{position}.0/24"
    node_spec: Object = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    # kubeadm labels and taints only the control plane; workers carry no role label.
    if spec.role == "control-plane":
        labels[CONTROL_PLANE_LABEL] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        node_spec["taints"] = [{"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now,
            "labels": labels,
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": node_spec,
        "status": _node_status(spec, spec.address or f"127.0.10.{position}", now),
    }


def beat(node: Object) -> Object:
    """What a kubelet's status update changes: every condition's lastHeartbeatTime."""
    now = rfc3339()
    for condition in node.get("status", {}).get("conditions", []):
        condition["lastHeartbeatTime"] = now
    return node


def heartbeat_all(store: ObjectStore) -> None:
    for node in store.list("v1", "nodes"):
        store.update("v1", "nodes", None, node["metadata"]["name"], beat)


def node_status(node: Object) -> str:
    ready = next(
        (c for c in node.get("status", {}).get("conditions", []) if c.get("type") == "Ready"),
        None,
    )
    status = "Unknown" if ready is None else {"True": "Ready"}.get(ready.get("status"), "NotReady")
    if node.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def node_roles(node: Object) -> str:
    labels = node.get("metadata", {}).get("labels") or {}
    roles = {key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/")}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return ",".join(sorted(r for r in roles if r)) or "<none>"


def _address(node: Object, kind: str) -> str:
    addresses = node.get("status", {}).get("addresses", [])
    return next((a["address"] for a in addresses if a.get("type") == kind), "<none>")


def _info(node: Object, key: str) -> str:
    return str(node.get("status", {}).get("nodeInfo", {}).get(key, "<unknown>"))


NODE_COLUMNS = (
    NAME_COLUMN,
    TableColumn("Status", node_status, description="The status of the node"),
    TableColumn("Roles", node_roles, description="The roles of the node"),
    AGE_COLUMN,
    TableColumn("Version", lambda n: _info(n, "kubeletVersion"), description="Kubelet Version"),
    TableColumn("Internal-IP", lambda n: _address(n, "InternalIP"), priority=1),
    TableColumn("External-IP", lambda n: _address(n, "ExternalIP"), priority=1),
    TableColumn("OS-Image", lambda n: _info(n, "osImage"), priority=1),
    TableColumn("Kernel-Version", lambda n: _info(n, "kernelVersion"), priority=1),
    TableColumn("Container-Runtime", lambda n: _info(n, "containerRuntimeVersion"), priority=1),
)
