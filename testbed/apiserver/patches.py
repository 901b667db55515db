"""Pure patch arithmetic: strategic merge, JSON merge (RFC 7386) and JSON patch (RFC 6902).

No I/O and no store access: each function takes the current object and returns a new one.
"""

from __future__ import annotations

import copy
from typing import Any

from testbed.apiserver.errors import ApiError, bad_request, invalid

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

# Merge keys of the list fields kubectl and controllers patch, keyed by field name. The real
# apiserver reads them from Go struct tags per type; by name is close enough for a testbed.
# Lists not named here (taints, tolerations, ...) are replaced whole, as upstream does for them.
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "imagePullSecrets": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "conditions": ("type",),
    "addresses": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "ports": ("containerPort", "port"),
    "topologySpreadConstraints": ("topologyKey",),
}
# Primitive lists with patchStrategy "merge": the patch's values are added to the current ones.
UNION_LISTS = frozenset({"finalizers"})


def apply_patch(current: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """Dispatch on the request's Content-Type, as the apiserver does."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == STRATEGIC_MERGE:
        return strategic_merge(current, _require_object(patch))
    if media == MERGE:
        merged = merge_patch(current, patch)
        if not isinstance(merged, dict):
            raise bad_request("merge patch must produce an object")
        return merged
    if media == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request("json patch must be a list of operations")
        return json_patch(current, patch)
    raise ApiError(415, "UnsupportedMediaType", f"the media type {media!r} is not supported")


def _require_object(patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise bad_request("patch body must be a JSON object")
    return patch


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes strategic merge patch, for the directives kubectl actually sends."""
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(current)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            drop = value if isinstance(value, list) else []
            result[field] = [item for item in result.get(field, []) if item not in drop]
        elif key.startswith("$"):
            continue  # $setElementOrder, $retainKeys: ordering hints we need not honour
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
                continue
            existing = result.get(key)
            base = existing if isinstance(existing, dict) else {}
            result[key] = strategic_merge(base, value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    existing = current if isinstance(current, list) else []
    if field in UNION_LISTS:
        return existing + [v for v in patch if v not in existing]
    merge_key = _merge_key_for(field, existing + patch)
    if merge_key is None:
        return [_strip_directives(v) for v in patch]
    merged = [copy.deepcopy(item) for item in existing]
    for item in patch:
        if not isinstance(item, dict):
            continue
        index = next(
            (i for i, old in enumerate(merged) if old.get(merge_key) == item.get(merge_key)),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append(_strip_directives(item))
        else:
            merged[index] = strategic_merge(merged[index], item)
    return merged


def _merge_key_for(field: str, items: list[Any]) -> str | None:
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    for key in MERGE_KEYS.get(field, ()):
        if all(key in item for item in items):
            return key
    return None


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    return copy.deepcopy(value)


def json_patch(current: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """RFC 6902 add/remove/replace/move/copy/test over a copy of `current`."""
    document: Any = copy.deepcopy(current)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise bad_request(f"invalid json patch operation: {operation!r}")
        document = _apply_operation(document, operation)
    if not isinstance(document, dict):
        raise bad_request("json patch must leave an object")
    return document


def _apply_operation(document: Any, operation: dict[str, Any]) -> Any:
    op, path = operation["op"], _parse_pointer(operation["path"])
    if op == "add":
        return _add(document, path, copy.deepcopy(operation.get("value")))
    if op == "remove":
        _remove(document, path)
        return document
    if op == "replace":
        _remove(document, path)
        return _add(document, path, copy.deepcopy(operation.get("value")))
    if op in ("move", "copy"):
        source = _parse_pointer(operation.get("from", ""))
        value = copy.deepcopy(_resolve(document, source))
        if op == "move":
            _remove(document, source)
        return _add(document, path, value)
    if op == "test":
        if _resolve(document, path) != operation.get("value"):
            raise invalid(f"json patch test failed at {operation['path']}")
        return document
    raise bad_request(f"unknown json patch op {op!r}")


def _parse_pointer(pointer: Any) -> list[str]:
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise bad_request(f"invalid json pointer {pointer!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def _resolve(document: Any, path: list[str]) -> Any:
    node = document
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise invalid(f"json patch path /{'/'.join(path)} does not exist")
    return node


def _add(document: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent, last = _resolve(document, path[:-1]), path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise invalid(f"json patch index {last!r} out of range")
    else:
        raise invalid(f"json patch path /{'/'.join(path)} has no container")
    return document


def _remove(document: Any, path: list[str]) -> None:
    if not path:
        raise invalid("json patch cannot remove the whole document")
    parent, last = _resolve(document, path[:-1]), path[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        parent.pop(int(last))
    else:
        raise invalid(f"json patch path /{'/'.join(path)} does not exist")
