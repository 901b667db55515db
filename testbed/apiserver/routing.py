"""Pure URL parsing: which resource, namespace, name and subresource a REST path names."""

from __future__ import annotations

from dataclasses import dataclass

from testbed.apiserver.kinds import ResourceKind, ResourceRegistry


@dataclass(frozen=True)
class Target:
    kind: ResourceKind
    namespace: str | None
    name: str | None
    subresource: str | None


def split_api_path(path: str) -> tuple[str, list[str]] | None:
    """`/api/v1/...` or `/apis/<group>/<version>/...` -> (apiVersion, remaining segments)."""
    segments = [s for s in path.split("/") if s]
    if len(segments) >= 2 and segments[0] == "api":
        return segments[1], segments[2:]
    if len(segments) >= 3 and segments[0] == "apis":
        return f"{segments[1]}/{segments[2]}", segments[3:]
    return None


def resolve(registry: ResourceRegistry, api_version: str, rest: list[str]) -> Target | None:
    """None when the path names no registered resource (the caller answers 404)."""
    namespace = None
    # /namespaces/<ns>/<resource> is a namespaced collection only when <resource> is one;
    # otherwise (e.g. /namespaces/<ns>/status) it is a subresource of the namespace itself.
    if len(rest) >= 3 and rest[0] == "namespaces":
        scoped = registry.lookup(api_version, rest[2])
        if scoped is not None and scoped.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    kind = registry.lookup(api_version, rest[0])
    if kind is None or (namespace is None and kind.namespaced and len(rest) > 1):
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return Target(kind, namespace, name, subresource)
