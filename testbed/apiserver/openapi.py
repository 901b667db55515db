"""Just enough OpenAPI v3 for `kubectl create -f`: each kind's PATCH advertises `fieldValidation`,
so kubectl (cli-runtime's queryParamVerifierV3) leaves validation to the server.
"""

from __future__ import annotations

import hashlib
from typing import Any

from testbed.apiserver.kinds import ResourceKind, ResourceRegistry

Object = dict[str, Any]
FIELD_VALIDATION = {
    "name": "fieldValidation",
    "in": "query",
    "description": "fieldValidation instructs the server on how to handle objects in the "
    "request containing unknown or duplicate fields.",
    "schema": {"type": "string", "uniqueItems": True},
}


def api_path(api_version: str) -> str:
    """ "v1" -> "api/v1", "apps/v1" -> "apis/apps/v1", as keys of the v3 root document."""
    return f"apis/{api_version}" if "/" in api_version else f"api/{api_version}"


def _all_versions(registry: ResourceRegistry) -> list[str]:
    versions = ["v1"]
    for group, group_versions in registry.groups().items():
        versions.extend(f"{group}/{version}" for version in group_versions)
    return versions


def root_document(registry: ResourceRegistry, server_version: str) -> Object:
    paths = {}
    for api_version in _all_versions(registry):
        path = api_path(api_version)
        digest = hashlib.sha256(f"{server_version}/{path}".encode()).hexdigest()[:32].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def _item_path(kind: ResourceKind) -> str:
    scope = "/namespaces/{namespace}" if kind.namespaced else ""
    return f"/{api_path(kind.api_version)}{scope}/{kind.resource}/{{name}}"


def group_version_document(
    registry: ResourceRegistry, api_version: str, server_version: str
) -> Object | None:
    kinds = registry.kinds_in(api_version)
    if not kinds:
        return None
    paths = {}
    for kind in kinds:
        group_version_kind = {"group": kind.group, "version": kind.version, "kind": kind.kind}
        paths[_item_path(kind)] = {
            "patch": {
                "operationId": f"patch{kind.kind}",
                "parameters": [dict(FIELD_VALIDATION)],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": group_version_kind,
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": server_version},
        "paths": paths,
        "components": {"schemas": {}},
    }
