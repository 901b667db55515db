"""Where a pod may run, decided the way kube-scheduler's filters would: Ready node, cordon,
NoSchedule/NoExecute taints against the pod's tolerations, nodeSelector. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Object = dict[str, Any]
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})

# What the DaemonSet controller adds to every DaemonSet pod (daemon/util.AddOrUpdateDaemonPod...).
DAEMON_TOLERATIONS = tuple(
    {"key": f"node.kubernetes.io/{key}", "operator": "Exists", "effect": effect}
    for key, effect in (
        ("not-ready", "NoExecute"),
        ("unreachable", "NoExecute"),
        ("disk-pressure", "NoSchedule"),
        ("memory-pressure", "NoSchedule"),
        ("pid-pressure", "NoSchedule"),
        ("unschedulable", "NoSchedule"),
    )
)


def tolerates(toleration: Object, taint: Object) -> bool:
    """core/v1 Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    if toleration.get("operator") == "Exists":
        return True
    return bool(key) and (toleration.get("value") or "") == (taint.get("value") or "")


def node_is_ready(node: Object) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _effective_taints(node: Object) -> list[Object]:
    taints = list(node.get("spec", {}).get("taints") or [])
    # The scheduler treats a cordon as this taint (NodeUnschedulable plugin).
    if node.get("spec", {}).get("unschedulable"):
        taints.append(UNSCHEDULABLE_TAINT)
    return taints


def why_not(pod_spec: Object, node: Object, *, require_ready: bool = True) -> str | None:
    """None when the pod fits the node, else the scheduler's reason in its words."""
    if require_ready and not node_is_ready(node):
        return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    tolerations = pod_spec.get("tolerations") or []
    for taint in _effective_taints(node):
        if taint.get("effect") not in BLOCKING_EFFECTS:
            continue
        if not any(tolerates(toleration, taint) for toleration in tolerations):
            if taint is UNSCHEDULABLE_TAINT:
                return "node(s) were unschedulable"
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    labels = node.get("metadata", {}).get("labels") or {}
    wanted = pod_spec.get("nodeSelector") or {}
    if any(labels.get(key) != value for key, value in wanted.items()):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def pick_node(pod_spec: Object, nodes: Iterable[Object], load: dict[str, int]) -> str | None:
    """The fitting node with the fewest pods (ties by name), or None when nothing fits."""
    fitting = [str(n["metadata"]["name"]) for n in nodes if why_not(pod_spec, n) is None]
    if not fitting:
        return None
    return min(fitting, key=lambda name: (load.get(name, 0), name))


def unschedulable_message(pod_spec: Object, nodes: list[Object]) -> str:
    """The FailedScheduling summary: "0/4 nodes are available: 1 node(s) were unschedulable..."."""
    reasons: dict[str, int] = {}
    for node in nodes:
        reason = why_not(pod_spec, node)
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return f"0/{len(nodes)} nodes are available: {parts}."
