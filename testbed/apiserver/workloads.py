"""The apps/v1 controllers: Deployments own ReplicaSets, ReplicaSets and DaemonSets own pods,
and the garbage collector removes what lost its owner. Each `sync_*` writes only what changed.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

from testbed.apiserver.disruption import scaled_value
from testbed.apiserver.errors import ApiError
from testbed.apiserver.pods import (
    controller_of,
    is_active,
    is_ready,
    is_terminating,
    owner_reference,
    pod_from_template,
    random_suffix,
    uid_of,
    with_pod_defaults,
)
from testbed.apiserver.scheduling import DAEMON_TOLERATIONS, why_not
from testbed.apiserver.statuses import condition, set_replicas, set_status
from testbed.apiserver.store import ObjectStore

Object = dict[str, Any]
APPS = "apps/v1"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
# Testbed-only: comma-separated node names for the first pods a ReplicaSet creates (one per
# name, cycling), so a scenario can say where its workloads start. Replacements are scheduled.
INITIAL_NODES = "testbed.kubegate.io/initial-nodes"
OWNER_KINDS = frozenset({"Deployment", "ReplicaSet", "DaemonSet", "Node"})
# (namespace, name) -> begin a pod's graceful deletion, as a controller's DELETE would.
DeletePod = Callable[[str, str], None]


def template_hash(template: Object) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:10])


def owned_by(owner: Object, objects: list[Object]) -> list[Object]:
    uid = uid_of(owner)
    return [obj for obj in objects if (controller_of(obj) or {}).get("uid") == uid]


def _count(objects: list[Object], key: str) -> int:
    return sum(int(obj.get("status", {}).get(key) or 0) for obj in objects)


def _create_pod(store: ObjectStore, owner: Object, template: Object, node: str | None) -> None:
    base = owner["metadata"]["name"]
    pod = with_pod_defaults(pod_from_template(owner, template, name=f"{base}-{random_suffix()}"))
    pod["metadata"]["generateName"] = f"{base}-"
    if node is not None:
        pod["spec"]["nodeName"] = node
    try:
        store.create("v1", "pods", pod)
    except ApiError:
        pod["metadata"]["name"] = f"{base}-{random_suffix()}"  # a suffix collision: once more
        store.create("v1", "pods", pod)


def new_replicaset(deployment: Object, digest: str, revision: int) -> Object:
    spec = deployment["spec"]
    template = copy.deepcopy(spec.get("template") or {})
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
    annotations = {
        key: value
        for key, value in (deployment["metadata"].get("annotations") or {}).items()
        if not key.startswith(("kubectl.kubernetes.io/", "deployment.kubernetes.io/"))
    }
    replicas = int(spec.get("replicas", 1))
    annotations.update({REVISION: str(revision)})
    annotations["deployment.kubernetes.io/desired-replicas"] = str(replicas)
    return {
        "apiVersion": APPS,
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{deployment['metadata']['name']}-{digest}",
            "namespace": deployment["metadata"]["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": annotations,
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
    }


def sync_deployment(store: ObjectStore, deployment: Object, replicasets: list[Object]) -> None:
    """One current ReplicaSet at full scale, older ones scaled to zero (a Recreate, in effect)."""
    owned = owned_by(deployment, replicasets)
    digest = template_hash(deployment["spec"].get("template") or {})
    current = next(
        (rs for rs in owned if rs["metadata"].get("labels", {}).get(HASH_LABEL) == digest), None
    )
    if current is None:
        revisions = [int(rs["metadata"].get("annotations", {}).get(REVISION, 0)) for rs in owned]
        body = new_replicaset(deployment, digest, max(revisions, default=0) + 1)
        current = store.create(APPS, "replicasets", body)
        owned.append(current)
    replicas = int(deployment["spec"].get("replicas", 1))
    for rs in owned:
        set_replicas(store, APPS, "replicasets", rs, replicas if rs is current else 0)
    set_status(
        store, APPS, "deployments", deployment, deployment_status(deployment, owned, current)
    )


def deployment_status(deployment: Object, owned: list[Object], current: Object) -> Object:
    replicas = int(deployment["spec"].get("replicas", 1))
    available = _count(owned, "availableReplicas")
    strategy = deployment["spec"].get("strategy", {}).get("rollingUpdate") or {}
    tolerated = scaled_value(strategy.get("maxUnavailable", "25%"), replicas)
    previous = deployment.get("status") or {}
    name = current["metadata"]["name"]
    counts = {
        "replicas": _count(owned, "replicas"),
        "updatedReplicas": _count([current], "replicas"),
        "readyReplicas": _count(owned, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(0, replicas - available),
    }
    # As in the Go types, zero counts are omitted (omitempty).
    status: Object = {"observedGeneration": deployment["metadata"].get("generation", 1)}
    status.update({key: value for key, value in counts.items() if value})
    done = _count([current], "availableReplicas") >= replicas
    status["conditions"] = [
        condition(
            "Available",
            available >= replicas - tolerated,
            "MinimumReplicasAvailable"
            if available >= replicas - tolerated
            else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available >= replicas - tolerated
            else "Deployment does not have minimum availability.",
            previous,
            updated=True,
        ),
        condition(
            "Progressing",
            True,
            "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
            f'ReplicaSet "{name}" has successfully progressed.'
            if done
            else f'ReplicaSet "{name}" is progressing.',
            previous,
            updated=True,
        ),
    ]
    return status


def sync_replicaset(
    store: ObjectStore,
    replicaset: Object,
    pods: list[Object],
    *,
    delete_pod: DeletePod,
    pinned: dict[str, list[str]],
) -> None:
    """Keep `spec.replicas` active pods. `pinned` holds, per ReplicaSet uid, the nodes its
    initial pods still have to start on (from INITIAL_NODES, fixed the first time it is seen)."""
    mine = owned_by(replicaset, pods)
    active = [pod for pod in mine if is_active(pod)]
    wanted = int(replicaset["spec"].get("replicas", 1))
    template = replicaset["spec"].get("template") or {}
    uid = uid_of(replicaset)
    if uid not in pinned:
        annotation = (replicaset["metadata"].get("annotations") or {}).get(INITIAL_NODES, "")
        nodes = [name.strip() for name in annotation.split(",") if name.strip()]
        pinned[uid] = [nodes[i % len(nodes)] for i in range(wanted)] if nodes else []
    for _ in range(wanted - len(active)):
        node = pinned[uid].pop(0) if pinned[uid] else None
        _create_pod(store, replicaset, template, node)
    # Scale down as the ReplicaSet controller ranks pods: unscheduled, then unready, newest first.
    ranked = sorted(
        active,
        key=lambda p: (
            bool(p["spec"].get("nodeName")),
            is_ready(p),
            p["metadata"].get("creationTimestamp", ""),
        ),
    )
    for pod in ranked[: max(0, len(active) - wanted)]:
        delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
    ready = sum(1 for pod in active if is_ready(pod))
    status: Object = {
        "replicas": len(active),
        "fullyLabeledReplicas": len(active),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": replicaset["metadata"].get("generation", 1),
    }
    status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
    set_status(store, APPS, "replicasets", replicaset, status)


def daemon_template(daemonset: Object) -> Object:
    """The DaemonSet's pod template with the tolerations its controller always adds."""
    template = copy.deepcopy(daemonset["spec"].get("template") or {})
    spec = template.setdefault("spec", {})
    tolerations = spec.setdefault("tolerations", [])
    tolerations.extend(t for t in DAEMON_TOLERATIONS if t not in tolerations)
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    labels["controller-revision-hash"] = template_hash(daemonset["spec"].get("template") or {})
    labels["pod-template-generation"] = str(daemonset["metadata"].get("generation", 1))
    return template


def sync_daemonset(
    store: ObjectStore, daemonset: Object, pods: list[Object], nodes: list[Object]
) -> None:
    """A pod on every node it tolerates (cordons included), bound directly as upstream does."""
    template = daemon_template(daemonset)
    eligible = [
        n["metadata"]["name"]
        for n in nodes
        if why_not(template["spec"], n, require_ready=False) is None
    ]
    mine = [pod for pod in owned_by(daemonset, pods) if is_active(pod)]
    placed = {pod["spec"].get("nodeName") for pod in mine}
    for node in eligible:
        if node not in placed:
            _create_pod(store, daemonset, template, node)
    ready = sum(1 for pod in mine if is_ready(pod))
    status: Object = {
        "currentNumberScheduled": len(placed & set(eligible)),
        "numberMisscheduled": len(placed - set(eligible)),
        "desiredNumberScheduled": len(eligible),
        "numberReady": ready,
        "observedGeneration": daemonset["metadata"].get("generation", 1),
        "updatedNumberScheduled": len(placed & set(eligible)),
        "numberAvailable": ready,
    }
    unavailable = len(eligible) - ready
    if unavailable > 0:
        status["numberUnavailable"] = unavailable
    set_status(store, APPS, "daemonsets", daemonset, status)


def collect_garbage(
    store: ObjectStore,
    *,
    owners: set[str],
    replicasets: list[Object],
    pods: list[Object],
    delete_pod: DeletePod,
) -> None:
    """Background cascading deletion: dependents whose controlling owner is gone go too."""
    for rs in replicasets:
        ref = controller_of(rs)
        if ref is not None and ref.get("kind") in OWNER_KINDS and ref.get("uid") not in owners:
            store.delete(APPS, "replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"])
    for pod in pods:
        ref = controller_of(pod)
        orphaned = (
            ref is not None and ref.get("kind") in OWNER_KINDS and ref.get("uid") not in owners
        )
        if orphaned and not is_terminating(pod):
            delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
