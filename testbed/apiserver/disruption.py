"""PodDisruptionBudget arithmetic as kube-controller-manager's disruption controller does it:
which pods a budget covers, how many must stay healthy, how many may go. Pure functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from testbed.apiserver.pods import is_healthy
from testbed.apiserver.selectors import selector_is_empty, selector_matches
from testbed.apiserver.timestamps import rfc3339

Object = dict[str, Any]
# pod -> (uid of the workload that sets its scale, that scale), or None for an unmanaged pod
ScaleOf = Callable[[Object], tuple[str, int] | None]


@dataclass(frozen=True)
class BudgetCounts:
    expected: int
    desired: int
    current: int
    allowed: int
    failure: str = ""  # why the budget could not be computed (then nothing may be disrupted)


def covers(pdb: Object, pod: Object) -> bool:
    """A budget with an empty selector covers nothing (as the eviction subresource decides)."""
    if pdb["metadata"].get("namespace") != pod["metadata"].get("namespace"):
        return False
    selector = pdb.get("spec", {}).get("selector")
    if selector_is_empty(selector):
        return False
    return selector_matches(selector, pod["metadata"].get("labels"))


def scaled_value(value: int | str, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent with rounding up, as the controller calls it."""
    if isinstance(value, int):
        return value
    if value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def _expected_scale(pods: Iterable[Object], scale_of: ScaleOf) -> int | None:
    scales: dict[str, int] = {}
    for pod in pods:
        found = scale_of(pod)
        if found is None:
            return None
        scales[found[0]] = found[1]
    return sum(scales.values())


def budget_counts(pdb: Object, pods: list[Object], scale_of: ScaleOf) -> BudgetCounts:
    """`pods` are the pods the budget covers, terminating ones included."""
    spec = pdb.get("spec", {})
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    current = sum(1 for pod in pods if is_healthy(pod))
    if max_unavailable is None and not (isinstance(min_available, str) and "%" in min_available):
        desired = scaled_value(min_available if min_available is not None else 1, 0)
        expected = len(pods)
    else:
        scale = _expected_scale(pods, scale_of)
        if scale is None:
            failure = "found no controllers for pods selected by this PodDisruptionBudget"
            return BudgetCounts(0, 0, current, 0, failure)
        expected = scale
        if max_unavailable is not None:
            desired = max(0, expected - scaled_value(max_unavailable, expected))
        else:
            desired = scaled_value(min_available, expected)
    return BudgetCounts(expected, desired, current, max(0, current - desired))


def budget_status(pdb: Object, counts: BudgetCounts) -> Object:
    """The status the controller writes; the condition keeps its transition time if unchanged."""
    previous = pdb.get("status") or {}
    if counts.failure:
        status, reason = "False", "SyncFailed"
    elif counts.allowed > 0:
        status, reason = "True", "SufficientPods"
    else:
        status, reason = "False", "InsufficientPods"
    old: Object = next(
        (c for c in previous.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), {}
    )
    generation = pdb["metadata"].get("generation", 1)
    condition = {
        "type": "DisruptionAllowed",
        "status": status,
        "reason": reason,
        "message": counts.failure,
        "observedGeneration": generation,
        "lastTransitionTime": old.get("lastTransitionTime")
        if old.get("status") == status
        else rfc3339(),
    }
    return {
        "observedGeneration": generation,
        "disruptionsAllowed": counts.allowed,
        "currentHealthy": counts.current,
        "desiredHealthy": counts.desired,
        "expectedPods": counts.expected,
        "conditions": [condition],
    }
