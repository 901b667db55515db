"""Scenario files: the workloads a test or benchmark starts with (Kubernetes manifests) plus
testbed knobs, and the check that the world they describe has settled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.apiserver.errors import ApiError
from testbed.apiserver.kinds import ResourceKind, ResourceRegistry
from testbed.apiserver.nodes import NodeSpec
from testbed.apiserver.pods import is_active, is_ready
from testbed.apiserver.store import ObjectStore

Object = dict[str, Any]
Admit = Callable[[ResourceKind, Object, Object | None], Object]
SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
KNOBS = frozenset({"readiness_delay", "termination_delay", "nodes", "manifests", "settle_timeout"})


@dataclass(frozen=True)
class Scenario:
    manifests: list[Object]
    nodes: list[NodeSpec] = field(default_factory=list)
    readiness_delay: float | None = None
    termination_delay: float | None = None
    settle_timeout: float = 30.0


def parse_scenario(source: Path | str | Object) -> Scenario:
    """A path, a bare name from testbed/scenarios ("drain"), or an already-parsed dict."""
    if isinstance(source, dict):
        document = source
    else:
        path = Path(source)
        if not path.exists() and (SCENARIOS / f"{source}.yaml").exists():
            path = SCENARIOS / f"{source}.yaml"
        document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or not set(document) <= KNOBS:
        raise ValueError(f"a scenario is a mapping with keys among {sorted(KNOBS)}")
    nodes = [NodeSpec(**spec) for spec in document.get("nodes") or []]
    return Scenario(
        manifests=list(document.get("manifests") or []),
        nodes=nodes,
        readiness_delay=document.get("readiness_delay"),
        termination_delay=document.get("termination_delay"),
        settle_timeout=float(document.get("settle_timeout", 30.0)),
    )


def create_manifests(
    store: ObjectStore, registry: ResourceRegistry, admit: Admit, manifests: list[Object]
) -> None:
    """Create each manifest as `kubectl create` would, in order; a pod's ownerReference to a
    Node may leave out the uid (a mirror pod's), which is filled in here."""
    for manifest in manifests:
        kind = registry.by_kind(manifest.get("apiVersion", ""), manifest.get("kind", ""))
        if kind is None:
            raise ApiError(400, "BadRequest", f"no kind {manifest.get('kind')!r} served here")
        body = dict(manifest)
        if kind.namespaced:
            body.setdefault("metadata", {}).setdefault("namespace", "default")
        for reference in body.get("metadata", {}).get("ownerReferences") or []:
            if reference.get("kind") == "Node" and not reference.get("uid"):
                node = store.require("v1", "nodes", None, reference["name"])
                reference["uid"] = node["metadata"]["uid"]
        if kind.has_status:
            body.pop("status", None)
        store.create(kind.api_version, kind.resource, admit(kind, body, None))


def _caught_up(obj: Object) -> bool:
    return bool(
        obj.get("status", {}).get("observedGeneration") == obj["metadata"].get("generation", 1)
    )


def settled(store: ObjectStore) -> bool:
    """Every workload has observed its spec and every active pod is Ready."""
    deployments = store.list("apps/v1", "deployments")
    for deployment in deployments:
        wanted = deployment["spec"].get("replicas", 1)
        ready = deployment.get("status", {}).get("readyReplicas", 0)
        if not _caught_up(deployment) or ready != wanted:
            return False
    for daemonset in store.list("apps/v1", "daemonsets"):
        status = daemonset.get("status", {})
        if not _caught_up(daemonset) or status.get("numberReady") != status.get(
            "desiredNumberScheduled"
        ):
            return False
    if not all(_caught_up(pdb) for pdb in store.list("policy/v1", "poddisruptionbudgets")):
        return False
    return all(is_ready(pod) for pod in store.list("v1", "pods") if is_active(pod))
