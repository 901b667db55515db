"""Writing controller status the way real controllers do: only when it changed, with
conditions that keep their transition times while their status stays the same.
"""

from __future__ import annotations

from typing import Any

from testbed.apiserver.store import ObjectStore
from testbed.apiserver.timestamps import rfc3339

Object = dict[str, Any]


def condition(
    kind: str, status: bool, reason: str, message: str, previous: Object, *, updated: bool = False
) -> Object:
    """A condition for `previous`'s status.conditions, timestamps carried over when unchanged;
    `updated` adds lastUpdateTime, which only Deployments carry.
    """
    wanted = "True" if status else "False"
    old: Object = next(
        (c for c in previous.get("conditions") or [] if c.get("type") == kind),
        {},
    )
    now = rfc3339()
    same = old.get("status") == wanted
    result: Object = {"type": kind, "status": wanted}
    if updated:
        keep = same and old.get("reason") == reason
        result["lastUpdateTime"] = old.get("lastUpdateTime", now) if keep else now
    result["lastTransitionTime"] = old.get("lastTransitionTime", now) if same else now
    result.update(reason=reason, message=message)
    return result


def set_status(
    store: ObjectStore, api_version: str, resource: str, obj: Object, status: Object
) -> None:
    """Write `status` to `obj` unless it already has exactly that status."""
    if obj.get("status") == status:
        return
    metadata = obj["metadata"]

    def replace(current: Object) -> Object:
        current["status"] = status
        return current

    store.update(api_version, resource, metadata.get("namespace"), metadata["name"], replace)


def set_replicas(
    store: ObjectStore, api_version: str, resource: str, obj: Object, replicas: int
) -> None:
    if obj.get("spec", {}).get("replicas") == replicas:
        return
    metadata = obj["metadata"]

    def scale(current: Object) -> Object:
        current.setdefault("spec", {})["replicas"] = replicas
        return current

    store.update(api_version, resource, metadata.get("namespace"), metadata["name"], scale)
