"""Resource kinds the fake apiserver serves: one `ResourceKind` per REST resource, in a registry
that routing, discovery and table printing all read. Adding a kind is one `register` call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from testbed.apiserver.timestamps import human_age

if TYPE_CHECKING:
    from testbed.apiserver.store import ObjectStore

Object = dict[str, Any]
# A POST-only subresource such as pods/eviction: (store, namespace, name, body) -> (code, body).
ActionHandler = Callable[["ObjectStore", str | None, str, Object], Awaitable[tuple[int, Object]]]

DEFAULT_VERBS = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclass(frozen=True)
class TableColumn:
    """One column of `kubectl get` output, computed by the server as a real apiserver does."""

    name: str
    cell: Callable[[Object], Any]
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0  # 1 = only shown with -o wide

    def definition(self) -> Object:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


NAME_COLUMN = TableColumn(
    "Name",
    lambda obj: obj["metadata"]["name"],
    format="name",
    description="Name must be unique within a namespace.",
)
AGE_COLUMN = TableColumn(
    "Age",
    lambda obj: human_age(obj["metadata"].get("creationTimestamp")),
    description="CreationTimestamp is a timestamp representing the server time when this object "
    "was created.",
)


@dataclass(frozen=True)
class ResourceKind:
    group: str  # "" for the core group
    version: str
    resource: str  # plural, as in the URL
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = DEFAULT_VERBS
    has_status: bool = False
    has_scale: bool = False  # serves the autoscaling/v1 Scale subresource
    columns: tuple[TableColumn, ...] = (NAME_COLUMN, AGE_COLUMN)
    actions: Mapping[str, ActionHandler] = field(default_factory=dict)
    # An action's body kind when it lives in another group, e.g. pods/eviction -> policy/v1
    # Eviction; kubectl drain only evicts when discovery names that group and version.
    action_kinds: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def discovery_entries(self) -> list[Object]:
        """This kind's rows in an APIResourceList, subresources included."""
        main: Object = {
            "name": self.resource,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        entries = [main]
        if self.has_status:
            entries.append(self._subresource("status", self.kind, ["get", "patch", "update"]))
        if self.has_scale:
            scale = self._subresource("scale", "Scale", ["get", "patch", "update"])
            scale.update(group="autoscaling", version="v1")
            entries.append(scale)
        for action in self.actions:
            group, version, kind = self.action_kinds.get(action, ("", "", action.capitalize()))
            entry = self._subresource(action, kind, ["create"])
            if group:
                entry.update(group=group, version=version)
            entries.append(entry)
        return entries

    def _subresource(self, name: str, kind: str, verbs: list[str]) -> Object:
        return {
            "name": f"{self.resource}/{name}",
            "singularName": "",
            "namespaced": self.namespaced,
            "kind": kind,
            "verbs": verbs,
        }


class ResourceRegistry:
    """Kinds by (apiVersion, resource); group versions kept in registration order."""

    def __init__(self) -> None:
        self._kinds: dict[tuple[str, str], ResourceKind] = {}

    def register(self, kind: ResourceKind) -> None:
        self._kinds[(kind.api_version, kind.resource)] = kind

    def lookup(self, api_version: str, resource: str) -> ResourceKind | None:
        return self._kinds.get((api_version, resource))

    def by_kind(self, api_version: str, kind: str) -> ResourceKind | None:
        """The resource serving `kind` in `api_version`, as a manifest names it."""
        found = (k for k in self._kinds.values() if (k.api_version, k.kind) == (api_version, kind))
        return next(found, None)

    def kinds_in(self, api_version: str) -> list[ResourceKind]:
        return [kind for kind in self._kinds.values() if kind.api_version == api_version]

    def groups(self) -> dict[str, list[str]]:
        """Named groups (not core) and their versions, preferred version first."""
        found: dict[str, list[str]] = {}
        for kind in self._kinds.values():
            if kind.group and kind.version not in found.setdefault(kind.group, []):
                found[kind.group].append(kind.version)
        return found
