"""The built-in kinds this testbed serves, with their `kubectl get` columns; the server adds
the pods/eviction action, which needs the server's disruption bookkeeping.
"""

from __future__ import annotations

from typing import Any

from testbed.apiserver.columns import (
    AUTOSCALER_COLUMNS,
    BUDGET_COLUMNS,
    DAEMONSET_COLUMNS,
    DEPLOYMENT_COLUMNS,
    EVENT_COLUMNS,
    REPLICASET_COLUMNS,
)
from testbed.apiserver.kinds import (
    AGE_COLUMN,
    NAME_COLUMN,
    ResourceKind,
    ResourceRegistry,
    TableColumn,
)
from testbed.apiserver.nodes import NODE_COLUMNS

Object = dict[str, Any]
CLUSTER_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


def _namespace_phase(namespace: Object) -> str:
    return str(namespace.get("status", {}).get("phase", "Active"))


def _pod_ready(pod: Object) -> str:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    total = len(statuses) or len(pod.get("spec", {}).get("containers", []))
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(pod: Object) -> str:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    return str(pod.get("status", {}).get("phase", "Pending"))


def _pod_restarts(pod: Object) -> int:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)


POD_COLUMNS = (
    NAME_COLUMN,
    TableColumn("Ready", _pod_ready),
    TableColumn("Status", _pod_status),
    TableColumn("Restarts", _pod_restarts, type="string"),
    AGE_COLUMN,
    TableColumn("IP", lambda p: p.get("status", {}).get("podIP", "<none>"), priority=1),
    TableColumn("Node", lambda p: p.get("spec", {}).get("nodeName", "<none>"), priority=1),
    TableColumn("Nominated Node", lambda p: "<none>", priority=1),
    TableColumn("Readiness Gates", lambda p: "<none>", priority=1),
)


BUILTIN_KINDS = (
    ResourceKind(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        short_names=("ns",),
        verbs=CLUSTER_VERBS,
        has_status=True,
        columns=(NAME_COLUMN, TableColumn("Status", _namespace_phase), AGE_COLUMN),
    ),
    ResourceKind(
        "",
        "v1",
        "nodes",
        "Node",
        False,
        short_names=("no",),
        has_status=True,
        columns=NODE_COLUMNS,
    ),
    ResourceKind(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        short_names=("po",),
        categories=("all",),
        has_status=True,
        columns=POD_COLUMNS,
    ),
    ResourceKind("", "v1", "events", "Event", True, short_names=("ev",), columns=EVENT_COLUMNS),
    ResourceKind(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        True,
        short_names=("ds",),
        categories=("all",),
        has_status=True,
        columns=DAEMONSET_COLUMNS,
    ),
    ResourceKind(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        short_names=("deploy",),
        categories=("all",),
        has_status=True,
        has_scale=True,
        columns=DEPLOYMENT_COLUMNS,
    ),
    ResourceKind(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        short_names=("rs",),
        categories=("all",),
        has_status=True,
        has_scale=True,
        columns=REPLICASET_COLUMNS,
    ),
    ResourceKind(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        True,
        short_names=("pdb",),
        has_status=True,
        columns=BUDGET_COLUMNS,
    ),
    ResourceKind(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        short_names=("hpa",),
        categories=("all",),
        has_status=True,
        columns=AUTOSCALER_COLUMNS,
    ),
    ResourceKind("coordination.k8s.io", "v1", "leases", "Lease", True),
    # Plain stored kinds, so manifests that run kubegate itself apply here too.
    ResourceKind("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
    ResourceKind("", "v1", "secrets", "Secret", True),
    ResourceKind("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
    ResourceKind("", "v1", "services", "Service", True, short_names=("svc",), categories=("all",)),
    ResourceKind(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        True,
        short_names=("pvc",),
        has_status=True,
    ),
)


def builtin_registry() -> ResourceRegistry:
    registry = ResourceRegistry()
    for kind in BUILTIN_KINDS:
        registry.register(kind)
    return registry
