"""Discovery documents in their legacy (non-aggregated) forms, which kubectl 1.32 accepts when
the server answers its aggregated-discovery Accept header with plain application/json.
"""

from __future__ import annotations

from typing import Any

from testbed.apiserver.kinds import ResourceRegistry

Object = dict[str, Any]


def version_info(git_version: str) -> Object:
    major, minor = git_version.lstrip("v").split(".")[:2]
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2024-10-22T20:28:14Z",
        "goVersion": "go1.22.8",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> Object:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group_list(registry: ResourceRegistry) -> Object:
    groups = []
    for group, versions in registry.groups().items():
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(registry: ResourceRegistry, api_version: str) -> Object | None:
    kinds = registry.kinds_in(api_version)
    if not kinds:
        return None
    resources = [entry for kind in kinds for entry in kind.discovery_entries()]
    document: Object = {
        "kind": "APIResourceList",
        "groupVersion": api_version,
        "resources": resources,
    }
    if "/" in api_version:
        document["apiVersion"] = "v1"
    return document
