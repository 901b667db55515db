"""Watch streams: newline-delimited `{"type", "object"}` events over one chunked response."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from testbed.apiserver.errors import ApiError, bad_request
from testbed.apiserver.kinds import ResourceKind
from testbed.apiserver.selectors import Predicate
from testbed.apiserver.store import ObjectStore
from testbed.apiserver.tables import table

Object = dict[str, Any]
WATCH_TRUE = frozenset({"true", "True", "1"})


def is_watch(request: web.Request) -> bool:
    return request.query.get("watch", "") in WATCH_TRUE


def _since(request: web.Request) -> int:
    raw = request.query.get("resourceVersion", "") or "0"
    if not raw.isdigit():
        raise bad_request(f"invalid resourceVersion {raw!r}")
    return int(raw)


def _timeout(request: web.Request) -> float | None:
    raw = request.query.get("timeoutSeconds", "")
    return float(raw) if raw.isdigit() else None


async def serve_watch(
    request: web.Request,
    *,
    store: ObjectStore,
    kind: ResourceKind,
    namespace: str | None,
    matches: Predicate,
    as_table: bool,
) -> web.StreamResponse:
    since, timeout = _since(request), _timeout(request)
    include = request.query.get("includeObject", "Metadata")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        watch = store.watch(kind.api_version, kind.resource, namespace, since=since)
    except ApiError as gone:
        # As upstream: a watch that cannot start still answers 200, with one ERROR event.
        await _send(response, {"type": "ERROR", "object": gone.status()})
        return response
    try:
        async with asyncio.timeout(timeout):
            async for event in watch:
                if not matches(event.object):
                    continue
                payload: Object = event.object
                if as_table:
                    version = str(event.resource_version)
                    payload = table(
                        kind, [payload], resource_version=version, include_object=include
                    )
                await _send(response, {"type": event.type, "object": payload})
    except (TimeoutError, ConnectionResetError):
        pass  # the watch's time is up or the client went away: both end the stream normally
    finally:
        watch.close()
    return response


async def _send(response: web.StreamResponse, event: Object) -> None:
    await response.write(json.dumps(event).encode() + b"\n")
