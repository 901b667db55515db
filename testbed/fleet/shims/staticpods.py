"""`mv` on a node, and what the kubelet would do about it: a static pod manifest moved out of
/etc/kubernetes/manifests takes its mirror pod away, moved back brings a new one (Ready after
the apiserver's readiness delay). Also the mirror pod object the fleet seeds at start, and
`upgrade_manifest`, kubeadm's rewrite of a manifest's image for a new version.

The testbed itself watches every control plane's manifests (testbed/controlplanes.py): on one
control plane or several, the API server and etcd member a manifest names stop while it is out,
a new image tag restarts that API server at that version, and mirror pods the API could not
take at once (no API server answering) are synced there once it answers.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Any

from testbed.fleet.shims.nodestate import Node, fail

MANIFESTS = "/etc/kubernetes/manifests"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
STATIC_PODS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
GONE_TIMEOUT_S = 10.0
SERVER_ERROR = re.compile(r": 5\d\d ")  # node.api's "apiserver GET /path: 503 {...}"
IMAGE = re.compile(r"(image:\s*\S+?):[^\s:]+$", re.MULTILINE)


def mirror_pod(pod: str, node: str, node_uid: str = "") -> dict[str, Any]:
    """The mirror pod a kubelet posts for a static pod: `<pod>-<node>` in kube-system."""
    owners = (
        [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": True}]
        if node_uid
        else []
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{pod}-{node}",
            "namespace": "kube-system",
            "labels": {"component": pod, "tier": "control-plane"},
            "annotations": {
                MIRROR_ANNOTATION: f"{pod}-{node}-{time.time_ns()}",
                "kubernetes.io/config.source": "file",
            },
            "ownerReferences": owners,
        },
        "spec": {
            "nodeName": node,
            "priorityClassName": "system-node-critical",
            "hostNetwork": True,
            "containers": [{"name": pod, "image": f"registry.k8s.io/{pod}"}],
            "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
        },
    }


def run(node: Node, _command: str, args: list[str]) -> int:
    """The real mv on the node's own paths, then the kubelet's view of the manifest directory."""
    mapped = [a if a.startswith("-") else node.host_path(a) for a in args]
    moved = subprocess.run(["/bin/mv", *mapped], check=False)
    if moved.returncode == 0 and any(MANIFESTS in a for a in args):
        try:
            sync_mirror_pods(node)
        except OSError:
            pass  # no API server answers (all stopped): the kubelet syncs mirror pods later
        except RuntimeError as error:
            if not SERVER_ERROR.search(str(error)):  # 5xx: storage down, synced later too
                return fail(f"testbed kubelet: could not sync mirror pods: {error}")
    return moved.returncode


def sync_mirror_pods(node: Node) -> None:
    manifests = node.host_path(MANIFESTS)
    for pod in STATIC_PODS:
        present = os.path.exists(os.path.join(manifests, f"{pod}.yaml"))
        path = f"/api/v1/namespaces/kube-system/pods/{pod}-{node.name}"
        current = _get(node, path)
        # The kubelet model's own sync (testbed/controlplanes.py) may get there first: a
        # mirror pod already there, or already gone, is the wanted state.
        if present and current is None:
            _tolerating(409, node.api, "POST", _PODS, mirror_pod(pod, node.name))
        elif not present and current is not None:
            _tolerating(404, node.api, "DELETE", path, {"gracePeriodSeconds": 0})
            _wait_gone(node, path)


_PODS = "/api/v1/namespaces/kube-system/pods"


def _tolerating(status: int, call: Any, *args: Any) -> None:
    try:
        call(*args)
    except RuntimeError as error:
        if f": {status} " not in str(error):
            raise


def _get(node: Node, path: str) -> Any:
    try:
        return node.api("GET", path)
    except RuntimeError as error:
        if ": 404 " in str(error):
            return None
        raise


def _wait_gone(node: Node, path: str) -> None:
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while _get(node, path) is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} still there {GONE_TIMEOUT_S:.0f} s after its deletion")
        time.sleep(0.05)


def upgrade_manifest(node: Node, pod: str, version: str) -> None:
    """Write `pod`'s manifest with its image at `version`, as `kubeadm upgrade apply|node` does
    for each control-plane component (kubeadm writes the new manifest in place of the old; the
    kubelet then restarts the pod). etcd keeps its own image version, as kubeadm's does
    within a Kubernetes minor."""
    path = os.path.join(node.host_path(MANIFESTS), f"{pod}.yaml")
    with open(path) as file:
        manifest = file.read()
    upgraded = IMAGE.sub(lambda m: f"{m.group(1)}:{version}", manifest, count=1)
    partial = os.path.join(os.path.dirname(path), f".{pod}.yaml.{os.getpid()}")  # hidden
    with open(partial, "w") as file:
        file.write(upgraded)
    os.replace(partial, path)  # the kubelet never reads half a manifest
