"""HorizontalPodAutoscalers (autoscaling/v2): the apiserver's validation of the replica bounds,
and a controller that only keeps the target within them (there are no metrics here).
"""

from __future__ import annotations

from typing import Any

from testbed.apiserver.errors import invalid_object
from testbed.apiserver.statuses import condition, set_replicas, set_status
from testbed.apiserver.store import ObjectStore
from testbed.apiserver.timestamps import rfc3339

Object = dict[str, Any]
SCALABLE = {"Deployment": ("apps/v1", "deployments"), "ReplicaSet": ("apps/v1", "replicasets")}
NO_METRICS = (
    "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to "
    "get metrics for resource cpu: no metrics returned from resource metrics API"
)


def field_errors(hpa: Object) -> list[tuple[str, Any, str]]:
    """(field, value, detail) for each rule of validateHorizontalPodAutoscalerSpec broken."""
    spec = hpa.get("spec") or {}
    errors: list[tuple[str, Any, str]] = []
    minimum, maximum = spec.get("minReplicas"), spec.get("maxReplicas", 0)
    if minimum is not None and minimum < 1:
        errors.append(("spec.minReplicas", minimum, "must be greater than or equal to 1"))
    if maximum < 1:
        errors.append(("spec.maxReplicas", maximum, "must be greater than 0"))
    if minimum is not None and maximum < minimum:
        errors.append(
            ("spec.maxReplicas", maximum, "must be greater than or equal to `minReplicas`")
        )
    target = spec.get("scaleTargetRef") or {}
    for key in ("kind", "name"):
        if not target.get(key):
            errors.append((f"spec.scaleTargetRef.{key}", "", "Required value"))
    return errors


def validate_autoscaler(hpa: Object) -> None:
    errors = field_errors(hpa)
    if errors:
        name = hpa.get("metadata", {}).get("name", "")
        raise invalid_object("HorizontalPodAutoscaler", "autoscaling", name, errors)


def _missing_target(ref: Object, previous: Object) -> Object:
    kind, name = ref.get("kind", ""), ref.get("name", "")
    message = (
        "the HPA controller was unable to get the target's current scale: "
        f'{kind.lower()}s "{name}" not found'
    )
    return {
        "currentReplicas": 0,
        "desiredReplicas": 0,
        "conditions": [condition("AbleToScale", False, "FailedGetScale", message, previous)],
    }


def _within_bounds(current: int, low: int, high: int, previous: Object) -> Object:
    if current < low:
        reason, message = "TooFewReplicas", "the desired replica count is less than the minimum"
    elif current > high:
        reason, message = "TooManyReplicas", "the desired replica count is more than the maximum"
    else:
        reason, message = "DesiredWithinRange", "the desired count is within the acceptable range"
    return {
        "currentReplicas": current,
        "desiredReplicas": min(max(current, low), high),
        "conditions": [
            condition(
                "AbleToScale",
                True,
                "ReadyForNewScale",
                "recommended size matches current size",
                previous,
            ),
            condition("ScalingActive", False, "FailedGetResourceMetric", NO_METRICS, previous),
            condition("ScalingLimited", reason != "DesiredWithinRange", reason, message, previous),
        ],
    }


def sync_autoscaler(store: ObjectStore, hpa: Object) -> None:
    """Clamp the target's replicas into [minReplicas, maxReplicas], as the HPA does unmetered."""
    spec, previous = hpa.get("spec") or {}, hpa.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    found = SCALABLE.get(ref.get("kind", ""))
    target = None
    if found is not None:
        target = store.get(found[0], found[1], hpa["metadata"]["namespace"], ref.get("name", ""))
    if found is None or target is None:
        status = _missing_target(ref, previous)
    else:
        current = int(target.get("spec", {}).get("replicas", 1))
        low, high = int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", 1))
        status = _within_bounds(current, low, high, previous)
        if status["desiredReplicas"] != current:
            set_replicas(store, found[0], found[1], target, status["desiredReplicas"])
            status["lastScaleTime"] = rfc3339()
        elif previous.get("lastScaleTime"):
            status["lastScaleTime"] = previous["lastScaleTime"]
    set_status(store, "autoscaling/v2", "horizontalpodautoscalers", hpa, status)
