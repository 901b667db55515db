"""The `/scale` subresource (autoscaling/v1 Scale) of Deployments and ReplicaSets, which
`kubectl scale` and autoscalers read and patch instead of the whole object. Pure functions.
"""

from __future__ import annotations

from typing import Any

from testbed.apiserver.errors import bad_request

Object = dict[str, Any]


def scale_view(obj: Object) -> Object:
    metadata = obj["metadata"]
    selector = obj.get("spec", {}).get("selector") or {}
    terms = [f"{key}={value}" for key, value in (selector.get("matchLabels") or {}).items()]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in metadata
        },
        "spec": {"replicas": int(obj.get("spec", {}).get("replicas", 1))},
        "status": {
            "replicas": int(obj.get("status", {}).get("replicas") or 0),
            "selector": ",".join(terms),
        },
    }


def apply_scale(obj: Object, scale: Object) -> Object:
    """`obj` with the replicas `scale` asks for; a resourceVersion in `scale` is kept, so a
    stale one still gets the store's 409."""
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise bad_request("spec.replicas must be a non-negative integer")
    obj.setdefault("spec", {})["replicas"] = replicas
    claimed = (scale.get("metadata") or {}).get("resourceVersion")
    if claimed:
        obj["metadata"]["resourceVersion"] = claimed
    return obj
