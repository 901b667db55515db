"""Server-side printing: `meta.k8s.io/v1` Tables, which kubectl asks for with `as=Table`."""

from __future__ import annotations

from typing import Any

from testbed.apiserver.kinds import ResourceKind

Object = dict[str, Any]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def table_row(kind: ResourceKind, obj: Object, *, include_object: str = "Metadata") -> Object:
    row: Object = {"cells": [column.cell(obj) for column in kind.columns]}
    if include_object == "Object":
        row["object"] = obj
    elif include_object != "None":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {}),
        }
    return row


def table(
    kind: ResourceKind,
    objects: list[Object],
    *,
    resource_version: str,
    include_object: str = "Metadata",
) -> Object:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [column.definition() for column in kind.columns],
        "rows": [table_row(kind, obj, include_object=include_object) for obj in objects],
    }
