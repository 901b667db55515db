"""`kubectl get` columns for workloads, budgets, autoscalers and events, as the real apiserver's
table printers (pkg/printers/internalversion) render them.
"""

from __future__ import annotations

from typing import Any

from testbed.apiserver.kinds import AGE_COLUMN, NAME_COLUMN, TableColumn
from testbed.apiserver.timestamps import human_age

Object = dict[str, Any]


def _status(obj: Object, key: str) -> int:
    return int(obj.get("status", {}).get(key) or 0)


def _spec(obj: Object, key: str, default: Any = 0) -> Any:
    return obj.get("spec", {}).get(key, default)


def _containers(obj: Object) -> list[Object]:
    template = obj.get("spec", {}).get("template", {})
    return list(template.get("spec", {}).get("containers") or [])


def _selector(obj: Object) -> str:
    selector = obj.get("spec", {}).get("selector") or {}
    terms = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    return ",".join(terms) or "<none>"


def _int_or_none(value: Any) -> str:
    return "N/A" if value is None else str(value)


def _reference(hpa: Object) -> str:
    ref = hpa.get("spec", {}).get("scaleTargetRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _targets(hpa: Object) -> str:
    metrics = hpa.get("spec", {}).get("metrics") or []
    shown = []
    for metric in metrics:
        resource = metric.get("resource") or {}
        utilization = (resource.get("target") or {}).get("averageUtilization")
        if utilization is not None:
            shown.append(f"{resource.get('name', '')}: <unknown>/{utilization}%")
    return ", ".join(shown) or "<none>"


def _event_object(event: Object) -> str:
    involved = event.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


WIDE_TEMPLATE_COLUMNS = (
    TableColumn(
        "Containers", lambda o: ",".join(c.get("name", "") for c in _containers(o)), priority=1
    ),
    TableColumn(
        "Images", lambda o: ",".join(c.get("image", "") for c in _containers(o)), priority=1
    ),
    TableColumn("Selector", _selector, priority=1),
)
DEPLOYMENT_COLUMNS = (
    NAME_COLUMN,
    TableColumn("Ready", lambda d: f"{_status(d, 'readyReplicas')}/{_spec(d, 'replicas', 1)}"),
    TableColumn("Up-to-date", lambda d: _status(d, "updatedReplicas"), type="integer"),
    TableColumn("Available", lambda d: _status(d, "availableReplicas"), type="integer"),
    AGE_COLUMN,
    *WIDE_TEMPLATE_COLUMNS,
)
REPLICASET_COLUMNS = (
    NAME_COLUMN,
    TableColumn("Desired", lambda r: int(_spec(r, "replicas", 1)), type="integer"),
    TableColumn("Current", lambda r: _status(r, "replicas"), type="integer"),
    TableColumn("Ready", lambda r: _status(r, "readyReplicas"), type="integer"),
    AGE_COLUMN,
    *WIDE_TEMPLATE_COLUMNS,
)
DAEMONSET_COLUMNS = (
    NAME_COLUMN,
    TableColumn("Desired", lambda d: _status(d, "desiredNumberScheduled"), type="integer"),
    TableColumn("Current", lambda d: _status(d, "currentNumberScheduled"), type="integer"),
    TableColumn("Ready", lambda d: _status(d, "numberReady"), type="integer"),
    TableColumn("Up-to-date", lambda d: _status(d, "updatedNumberScheduled"), type="integer"),
    TableColumn("Available", lambda d: _status(d, "numberAvailable"), type="integer"),
    TableColumn(
        "Node Selector",
        lambda d: (
            ",".join(
                f"{k}={v}"
                for k, v in (
                    _spec(d, "template", {}).get("spec", {}).get("nodeSelector") or {}
                ).items()
            )
            or "<none>"
        ),
    ),
    AGE_COLUMN,
    *WIDE_TEMPLATE_COLUMNS,
)
BUDGET_COLUMNS = (
    NAME_COLUMN,
    TableColumn("Min Available", lambda p: _int_or_none(_spec(p, "minAvailable", None))),
    TableColumn("Max Unavailable", lambda p: _int_or_none(_spec(p, "maxUnavailable", None))),
    TableColumn("Allowed Disruptions", lambda p: _status(p, "disruptionsAllowed"), type="integer"),
    AGE_COLUMN,
)
AUTOSCALER_COLUMNS = (
    NAME_COLUMN,
    TableColumn("Reference", _reference),
    TableColumn("Targets", _targets),
    TableColumn("MinPods", lambda h: str(_spec(h, "minReplicas", 1))),
    TableColumn("MaxPods", lambda h: int(_spec(h, "maxReplicas", 0)), type="integer"),
    TableColumn("Replicas", lambda h: _status(h, "currentReplicas"), type="integer"),
    AGE_COLUMN,
)
EVENT_COLUMNS = (
    TableColumn(
        "Last Seen",
        lambda e: human_age(e.get("lastTimestamp") or e["metadata"].get("creationTimestamp")),
    ),
    TableColumn("Type", lambda e: e.get("type", "")),
    TableColumn("Reason", lambda e: e.get("reason", "")),
    TableColumn("Object", _event_object),
    TableColumn("Message", lambda e: e.get("message", "")),
)
