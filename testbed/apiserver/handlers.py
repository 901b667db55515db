"""The REST verbs over registered kinds: get, list, watch, create, update, patch, delete,
with the `/status` split and POST action subresources (pods/eviction).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from testbed.apiserver.discovery import api_resource_list
from testbed.apiserver.errors import (
    ApiError,
    bad_request,
    json_response,
    method_not_allowed,
    not_found,
)
from testbed.apiserver.kinds import ResourceKind, ResourceRegistry
from testbed.apiserver.patches import apply_patch
from testbed.apiserver.routing import Target, resolve, split_api_path
from testbed.apiserver.scale import apply_scale, scale_view
from testbed.apiserver.selectors import field_selector, label_selector
from testbed.apiserver.store import Change, ObjectStore
from testbed.apiserver.tables import table, wants_table
from testbed.apiserver.watches import is_watch, serve_watch

Object = dict[str, Any]
# Defaulting and validation before a write: (kind, new object, stored object or None on create).
Admit = Callable[[ResourceKind, Object, Object | None], Object]
# A kind's own DELETE (pods: graceful): (namespace, name, DeleteOptions) -> response object.
Deleter = Callable[[str | None, str, Object], Object]


def _no_admission(_kind: ResourceKind, obj: Object, _old: Object | None) -> Object:
    return obj


def no_such_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


async def read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.text())
    except ValueError as error:
        raise bad_request(f"request body is not valid JSON: {error}") from error


def scope_write(
    kind: ResourceKind, subresource: str | None, current: Object, new: Object
) -> Object:
    """Writes to the main resource leave status alone; writes to /status change only status."""
    if not kind.has_status:
        return new
    if subresource == "status":
        result = copy.deepcopy(current)
        result["status"] = new.get("status", {})
        result["metadata"]["resourceVersion"] = new.get("metadata", {}).get("resourceVersion")
        return result
    if "status" in current:
        new["status"] = current["status"]
    else:
        new.pop("status", None)
    return new


async def delete_options(request: web.Request) -> Object:
    """DeleteOptions from the body (clients send one) and the query (kubectl sends neither)."""
    options: Object = {}
    if (await request.text()).strip():
        body = await read_json(request)
        options = body if isinstance(body, dict) else {}
    grace = request.query.get("gracePeriodSeconds", "")
    if grace.lstrip("-").isdigit():
        options["gracePeriodSeconds"] = int(grace)
    if request.query.get("dryRun"):
        options["dryRun"] = request.query.getall("dryRun")
    return options


class RestHandlers:
    def __init__(
        self,
        *,
        registry: ResourceRegistry,
        store: ObjectStore,
        admit: Admit = _no_admission,
        deleters: Mapping[tuple[str, str], Deleter] | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.admit = admit
        self.deleters = dict(deleters or {})

    async def serve(self, request: web.Request) -> web.StreamResponse:
        split = split_api_path(request.path)
        if split is None:
            raise no_such_path()
        api_version, rest = split
        if not rest:
            document = api_resource_list(self.registry, api_version)
            if document is None or request.method != "GET":
                raise no_such_path()
            return json_response(document)
        target = resolve(self.registry, api_version, rest)
        if target is None:
            raise no_such_path()
        if target.name is None:
            return await self._collection(request, target)
        return await self._item(request, target)

    async def _collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        kind = target.kind
        if request.method == "GET":
            labels = label_selector(request.query.get("labelSelector"))
            fields = field_selector(request.query.get("fieldSelector"))

            def matches(obj: Object) -> bool:
                return labels(obj) and fields(obj)

            as_table = wants_table(request.headers.get("Accept", ""))
            if is_watch(request):
                return await serve_watch(
                    request,
                    store=self.store,
                    kind=kind,
                    namespace=target.namespace,
                    matches=matches,
                    as_table=as_table,
                )
            # Serialized before this handler next awaits, so the stored objects are read as
            # they are, not copied.
            items = [
                obj
                for obj in self.store.peek(kind.api_version, kind.resource, target.namespace)
                if matches(obj)
            ]
            return json_response(self._list_body(request, kind, items, as_table=as_table))
        if request.method == "POST" and kind.namespaced == (target.namespace is not None):
            body = await read_json(request)
            return json_response(self._create(target, body), status=201)
        raise method_not_allowed()

    def _list_body(
        self, request: web.Request, kind: ResourceKind, items: list[Object], *, as_table: bool
    ) -> Object:
        version = str(self.store.resource_version)
        if as_table:
            include = request.query.get("includeObject", "Metadata")
            return table(kind, items, resource_version=version, include_object=include)
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": version},
            "items": items,
        }

    def _create(self, target: Target, body: Any) -> Object:
        kind = target.kind
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        body["apiVersion"], body["kind"] = kind.api_version, kind.kind
        metadata = body.setdefault("metadata", {})
        if target.namespace is not None:
            if self.store.get("v1", "namespaces", None, target.namespace) is None:
                raise not_found("namespaces", target.namespace)
            metadata["namespace"] = target.namespace
        if kind.has_status:
            body.pop("status", None)
        return self.store.create(kind.api_version, kind.resource, self.admit(kind, body, None))

    async def _item(self, request: web.Request, target: Target) -> web.StreamResponse:
        kind, namespace, name = target.kind, target.namespace, target.name
        assert name is not None
        sub = target.subresource
        if sub is not None and sub in kind.actions and request.method == "POST":
            code, result = await kind.actions[sub](
                self.store, namespace, name, await read_json(request)
            )
            return json_response(result, status=code)
        if sub == "scale" and kind.has_scale:
            return await self._scale(request, target)
        if sub not in (None, "status") or (sub == "status" and not kind.has_status):
            raise no_such_path()
        if request.method == "GET":  # answered before the next await: read, not copied
            obj = self.store.require(kind.api_version, kind.resource, namespace, name, peek=True)
            if wants_table(request.headers.get("Accept", "")):
                version = obj["metadata"]["resourceVersion"]
                include = request.query.get("includeObject", "Metadata")
                return json_response(
                    table(kind, [obj], resource_version=version, include_object=include)
                )
            return json_response(obj)
        if request.method == "PUT":
            body = await read_json(request)
            if not isinstance(body, dict):
                raise bad_request("request body must be a JSON object")
            return json_response(self._write(target, lambda _current: body))
        if request.method == "PATCH":
            patch = await read_json(request)
            content_type = request.headers.get("Content-Type", "")
            return json_response(
                self._write(target, lambda current: apply_patch(current, patch, content_type))
            )
        if request.method == "DELETE" and sub is None:
            deleter = self.deleters.get((kind.api_version, kind.resource))
            if deleter is not None:
                return json_response(deleter(namespace, name, await delete_options(request)))
            return json_response(
                self.store.delete(kind.api_version, kind.resource, namespace, name)
            )
        raise method_not_allowed()

    async def _scale(self, request: web.Request, target: Target) -> web.Response:
        kind, namespace, name = target.kind, target.namespace, target.name
        assert name is not None
        current = self.store.require(kind.api_version, kind.resource, namespace, name)
        if request.method == "GET":
            return json_response(scale_view(current))
        body = await read_json(request)
        if request.method == "PATCH":
            content_type = request.headers.get("Content-Type", "")
            scale = apply_patch(scale_view(current), body, content_type)
        elif request.method == "PUT" and isinstance(body, dict):
            scale = body
        else:
            raise method_not_allowed()
        updated = self.store.update(
            kind.api_version, kind.resource, namespace, name, lambda obj: apply_scale(obj, scale)
        )
        return json_response(scale_view(updated))

    def _write(self, target: Target, change: Change) -> Object:
        kind = target.kind
        assert target.name is not None

        def scoped(current: Object) -> Object:
            new = change(copy.deepcopy(current))
            new["apiVersion"], new["kind"] = kind.api_version, kind.kind
            return self.admit(kind, scope_write(kind, target.subresource, current, new), current)

        return self.store.update(
            kind.api_version, kind.resource, target.namespace, target.name, scoped
        )
