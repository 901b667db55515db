"""Pure facts about pods: readiness, termination, owners, and the status a kubelet would post
at each step of a pod's life. No store access.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

from testbed.apiserver.timestamps import rfc3339

Object = dict[str, Any]
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
# The alphabet apimachinery's rand.String uses for generated name suffixes.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def uid_of(obj: Object) -> str:
    return str(obj["metadata"]["uid"])


def key_of(obj: Object) -> tuple[str, str]:
    return obj["metadata"].get("namespace") or "", obj["metadata"]["name"]


def is_terminating(pod: Object) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_finished(pod: Object) -> bool:
    return pod.get("status", {}).get("phase") in FINISHED_PHASES


def is_active(pod: Object) -> bool:
    """What a ReplicaSet counts towards its replicas (controller.FilterActivePods)."""
    return not is_terminating(pod) and not is_finished(pod)


def is_ready(pod: Object) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_healthy(pod: Object) -> bool:
    """What the disruption controller counts as healthy: Ready and not being deleted."""
    return is_ready(pod) and not is_terminating(pod)


def is_mirror(pod: Object) -> bool:
    return MIRROR_ANNOTATION in (pod["metadata"].get("annotations") or {})


def controller_of(obj: Object) -> Object | None:
    """The ownerReference with `controller: true`, if any."""
    references = obj["metadata"].get("ownerReferences") or []
    return next((ref for ref in references if ref.get("controller")), None)


def owner_reference(owner: Object) -> Object:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_from_template(owner: Object, template: Object, *, name: str) -> Object:
    """A new, unscheduled pod as a workload controller creates it from its template."""
    metadata = copy.deepcopy(template.get("metadata") or {})
    metadata.pop("creationTimestamp", None)
    metadata.update(
        name=name,
        namespace=owner["metadata"]["namespace"],
        ownerReferences=[owner_reference(owner)],
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def _container_statuses(pod: Object, *, ready: bool, now: str) -> list[Object]:
    statuses = []
    for container in pod.get("spec", {}).get("containers") or []:
        state: Object = (
            {"running": {"startedAt": now}}
            if ready
            else {"waiting": {"reason": "ContainerCreating"}}
        )
        status: Object = {
            "name": container.get("name", ""),
            "image": container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "started": ready,
            "restartCount": 0,
            "state": state,
        }
        if ready:
            status["containerID"] = f"containerd://{secrets.token_hex(32)}"
        statuses.append(status)
    return statuses


def _condition(kind: str, status: bool, now: str, reason: str = "") -> Object:
    condition: Object = {
        "type": kind,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    if reason:
        condition["reason"] = reason
    return condition


def kubelet_status(pod: Object, *, host_ip: str, pod_ip: str, ready: bool) -> Object:
    """The status a kubelet posts: ContainerCreating while starting, Running and Ready after."""
    now = rfc3339()
    not_ready = "" if ready else "ContainersNotReady"
    return {
        "phase": "Running" if ready else "Pending",
        "conditions": [
            _condition("PodReadyToStartContainers", True, now),
            _condition("Initialized", True, now),
            _condition("Ready", ready, now, not_ready),
            _condition("ContainersReady", ready, now, not_ready),
            _condition("PodScheduled", True, now),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": pod.get("status", {}).get("startTime") or now,
        "qosClass": "BestEffort",
        "containerStatuses": _container_statuses(pod, ready=ready, now=now),
    }


def unschedulable_status(message: str) -> Object:
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(),
                "reason": "Unschedulable",
                "message": message,
            }
        ],
        "qosClass": "BestEffort",
    }


def with_pod_defaults(pod: Object) -> Object:
    """The defaults the apiserver fills into a new pod (a subset: the fields clients read)."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    for container in spec.get("containers") or []:
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
    if not pod.get("status"):
        pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    return pod
