"""The in-memory object store: objects keyed by (apiVersion, resource, namespace, name), one
global increasing resourceVersion, and per-resource watch fan-out with a short replay history.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import marshal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from testbed.apiserver.errors import ApiError, already_exists, conflict, not_found
from testbed.apiserver.patches import STRATEGIC_MERGE, apply_patch
from testbed.apiserver.timestamps import rfc3339

Object = dict[str, Any]
Change = Callable[[Object], Object]
T = TypeVar("T")


def clone(obj: T) -> T:
    """An independent copy of a stored object. Objects here are JSON-shaped (dicts, lists,
    strings, numbers, booleans, None), which marshal copies about 4x faster than
    `copy.deepcopy`; the controllers copy every object on each pass, on the event loop the
    served clients share. Anything else falls back to a deep copy."""
    try:
        return cast(T, marshal.loads(marshal.dumps(cast(Any, obj))))
    except ValueError:
        return copy.deepcopy(obj)


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED or DELETED
    api_version: str
    resource: str
    object: Object
    resource_version: int


WriteHook = Callable[[WatchEvent], None]


def group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


class Watch:
    """One watcher's queue of events for one resource, optionally one namespace."""

    def __init__(self, store: ObjectStore, api_version: str, resource: str, namespace: str | None):
        self._store = store
        self.api_version, self.resource, self.namespace = api_version, resource, namespace
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()

    def wants(self, event: WatchEvent) -> bool:
        if (event.api_version, event.resource) != (self.api_version, self.resource):
            return False
        return self.namespace is None or event.object["metadata"].get("namespace") == self.namespace

    def offer(self, event: WatchEvent) -> None:
        if self.wants(event):
            self._queue.put_nowait(event)

    def close(self) -> None:
        self._store._watches.discard(self)
        self._queue.put_nowait(None)

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event


class ObjectStore:
    """Every write goes through `_commit`, which stamps the resourceVersion and notifies."""

    def __init__(self, *, history: int = 5000) -> None:
        self._objects: dict[tuple[str, str], dict[tuple[str, str], Object]] = {}
        self._resource_version = 0
        self._history: collections.deque[WatchEvent] = collections.deque(maxlen=history)
        self._forgotten_up_to = 0  # events at or below this rv fell out of the history
        self._watches: set[Watch] = set()
        self._hooks: list[WriteHook] = []

    @property
    def resource_version(self) -> int:
        return self._resource_version

    def on_write(self, hook: WriteHook) -> None:
        """Call `hook` after every committed write (stats, controllers)."""
        self._hooks.append(hook)

    def get(
        self, api_version: str, resource: str, namespace: str | None, name: str
    ) -> Object | None:
        found = self._bucket(api_version, resource).get((namespace or "", name))
        return clone(found) if found is not None else None

    def peek(self, api_version: str, resource: str, namespace: str | None = None) -> list[Object]:
        """The stored objects themselves, in `list`'s order, for a caller that only reads them
        and is done before it next awaits (a list answered at once): no copies, which cost
        the serving process more than anything else when a client lists often."""
        bucket = self._bucket(api_version, resource)
        return [
            obj
            for (ns, _name), obj in sorted(bucket.items())
            if namespace is None or ns == namespace
        ]

    def list(self, api_version: str, resource: str, namespace: str | None = None) -> list[Object]:
        bucket = self._bucket(api_version, resource)
        return [
            clone(obj)
            for (ns, _name), obj in sorted(bucket.items())
            if namespace is None or ns == namespace
        ]

    def count(self, api_version: str, resource: str, matches: Callable[[Object], bool]) -> int:
        """How many stored objects satisfy `matches` (which must not mutate them); no copies."""
        return sum(1 for obj in self._bucket(api_version, resource).values() if matches(obj))

    def require(
        self,
        api_version: str,
        resource: str,
        namespace: str | None,
        name: str,
        *,
        peek: bool = False,
    ) -> Object:
        """The object (a copy; with `peek`, the stored one itself, as `peek` lists them)."""
        found = self._bucket(api_version, resource).get((namespace or "", name))
        if found is not None and not peek:
            found = clone(found)
        if found is None:
            raise not_found(resource, name, group=group_of(api_version))
        return found

    def create(self, api_version: str, resource: str, obj: Object) -> Object:
        metadata = obj.setdefault("metadata", {})
        name, namespace = metadata.get("name"), metadata.get("namespace")
        if not name and metadata.get("generateName"):
            name = metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value: name is required")
        if self.get(api_version, resource, namespace, name) is not None:
            raise already_exists(resource, name, group=group_of(api_version))
        new = clone(obj)
        new_meta = new["metadata"]
        # kubectl sends `creationTimestamp: null`; the server always owns these two.
        new_meta["uid"] = new_meta.get("uid") or str(uuid.uuid4())
        new_meta["creationTimestamp"] = new_meta.get("creationTimestamp") or rfc3339()
        new_meta["generation"] = 1
        return self._commit("ADDED", api_version, resource, new)

    def put(self, api_version: str, resource: str, obj: Object) -> Object:
        """Create or overwrite without version checks: for seeding and tests."""
        metadata = obj["metadata"]
        current = self.get(api_version, resource, metadata.get("namespace"), metadata["name"])
        if current is None:
            return self.create(api_version, resource, obj)
        fresh = clone(obj)
        fresh["metadata"].pop("resourceVersion", None)
        return self.update(
            api_version,
            resource,
            metadata.get("namespace"),
            metadata["name"],
            lambda _current: fresh,
        )

    def update(
        self, api_version: str, resource: str, namespace: str | None, name: str, change: Change
    ) -> Object:
        """Apply `change` to a copy of the current object and commit it.

        A resourceVersion left in the result must still be the current one, else 409: this is
        how PUT and PATCH bodies carrying a stale `metadata.resourceVersion` get refused.
        """
        current = self.require(api_version, resource, namespace, name)
        new = change(clone(current))
        metadata = new.setdefault("metadata", {})
        claimed = metadata.get("resourceVersion")
        if claimed not in (None, "") and str(claimed) != current["metadata"]["resourceVersion"]:
            raise conflict(resource, name, group=group_of(api_version))
        for immutable in ("name", "namespace", "uid", "creationTimestamp"):
            if immutable in current["metadata"]:
                metadata[immutable] = current["metadata"][immutable]
        generation = current["metadata"].get("generation", 1)
        metadata["generation"] = generation + (new.get("spec") != current.get("spec"))
        return self._commit("MODIFIED", api_version, resource, new)

    def patch(
        self,
        api_version: str,
        resource: str,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str = STRATEGIC_MERGE,
    ) -> Object:
        return self.update(
            api_version,
            resource,
            namespace,
            name,
            lambda cur: apply_patch(cur, patch, content_type),
        )

    def delete(self, api_version: str, resource: str, namespace: str | None, name: str) -> Object:
        current = self.require(api_version, resource, namespace, name)
        del self._bucket(api_version, resource)[(namespace or "", name)]
        self._resource_version += 1
        current["metadata"]["resourceVersion"] = str(self._resource_version)
        self._notify(WatchEvent("DELETED", api_version, resource, current, self._resource_version))
        return clone(current)

    def watch(
        self, api_version: str, resource: str, namespace: str | None = None, *, since: int = 0
    ) -> Watch:
        """Start a watch; `since=0` first replays the current objects as ADDED, like the apiserver.

        Raises 410 Gone when `since` is older than the replay history.
        """
        if since and since < self._forgotten_up_to:
            raise ApiError(410, "Expired", f"too old resource version: {since}")
        watch = Watch(self, api_version, resource, namespace)
        if since:
            for event in self._history:
                if event.resource_version > since:
                    watch.offer(event)
        else:
            for obj in self.list(api_version, resource, namespace):
                version = int(obj["metadata"]["resourceVersion"])
                watch.offer(WatchEvent("ADDED", api_version, resource, obj, version))
        self._watches.add(watch)
        return watch

    def close_watches(self) -> None:
        for watch in list(self._watches):
            watch.close()

    def _bucket(self, api_version: str, resource: str) -> dict[tuple[str, str], Object]:
        return self._objects.setdefault((api_version, resource), {})

    def _commit(self, event_type: str, api_version: str, resource: str, obj: Object) -> Object:
        self._resource_version += 1
        obj["apiVersion"] = obj.get("apiVersion") or api_version
        obj["metadata"]["resourceVersion"] = str(self._resource_version)
        key = (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
        self._bucket(api_version, resource)[key] = obj
        stored = clone(obj)
        self._notify(WatchEvent(event_type, api_version, resource, stored, self._resource_version))
        return clone(obj)

    def _notify(self, event: WatchEvent) -> None:
        if len(self._history) == self._history.maxlen:
            self._forgotten_up_to = self._history[0].resource_version
        self._history.append(event)
        for watch in list(self._watches):
            watch.offer(event)
        for hook in self._hooks:
            hook(event)
