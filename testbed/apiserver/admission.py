"""What the apiserver does to an object between decoding and storing it: defaulting and
validation, for the kinds where clients notice (pods, namespaces, workloads, PDBs, HPAs).
"""

from __future__ import annotations

from typing import Any

from testbed.apiserver.autoscaling import validate_autoscaler
from testbed.apiserver.errors import invalid_object
from testbed.apiserver.kinds import ResourceKind
from testbed.apiserver.pods import with_pod_defaults
from testbed.apiserver.selectors import selector_is_empty, selector_matches

Object = dict[str, Any]


def admit(kind: ResourceKind, obj: Object, old: Object | None) -> Object:
    """Default and validate `obj` (a create when `old` is None); raise 422 when invalid."""
    key = (kind.api_version, kind.resource)
    if key == ("v1", "pods") and old is None:
        with_pod_defaults(obj)
    elif key == ("v1", "namespaces") and old is None:
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif key in (("apps/v1", "deployments"), ("apps/v1", "daemonsets")):
        _default_workload(kind, obj)
        _validate_selector(kind, obj)
    elif key == ("policy/v1", "poddisruptionbudgets"):
        _validate_budget(obj)
    elif key == ("autoscaling/v2", "horizontalpodautoscalers"):
        validate_autoscaler(obj)
    return obj


def _default_workload(kind: ResourceKind, obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    if kind.kind == "Deployment":
        spec.setdefault("replicas", 1)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type") == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    else:
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type") == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
    template_spec = spec.setdefault("template", {}).setdefault("spec", {})
    with_pod_defaults({"spec": template_spec, "status": {"phase": "template"}})


def _validate_selector(kind: ResourceKind, obj: Object) -> None:
    spec = obj["spec"]
    labels = (spec["template"].get("metadata") or {}).get("labels") or {}
    name = obj["metadata"].get("name", "")
    if selector_is_empty(spec.get("selector")):
        errors = [("spec.selector", "", "Required value")]
        raise invalid_object(kind.kind, kind.group, name, errors)
    if not selector_matches(spec.get("selector"), labels):
        errors = [
            (
                "spec.template.metadata.labels",
                f"map[string]string{labels}",
                "`selector` does not match template `labels`",
            )
        ]
        raise invalid_object(kind.kind, kind.group, name, errors)


def _validate_budget(pdb: Object) -> None:
    spec = pdb.get("spec") or {}
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        name = pdb["metadata"].get("name", "")
        errors = [("spec", spec, "minAvailable and maxUnavailable cannot be both set")]
        raise invalid_object("PodDisruptionBudget", "policy", name, errors)
