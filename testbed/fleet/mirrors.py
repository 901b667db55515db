"""The control planes' static pods as the apiserver shows them at start: one mirror pod per
manifest the fleet wrote (the `mv` shim keeps them in step with the manifests afterwards).
"""

from __future__ import annotations

from testbed.apiserver import FakeApiServer
from testbed.fleet.shims.staticpods import STATIC_PODS, mirror_pod


def seed_mirror_pods(apiserver: FakeApiServer, node: str) -> None:
    found = apiserver.objects.get("v1", "nodes", None, node)
    node_uid = str(found["metadata"]["uid"]) if found else ""
    for pod in STATIC_PODS:
        if apiserver.objects.get("v1", "pods", "kube-system", f"{pod}-{node}") is None:
            apiserver.objects.create("v1", "pods", mirror_pod(pod, node, node_uid))
