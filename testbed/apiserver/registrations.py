"""How nodes registered: `registered_untainted` counts Nodes created without a taint they carry
later, so a pod could have been scheduled there in between. A kubelet given
`--register-with-taints` (kubeadm's nodeRegistration.taints) creates its Node already tainted;
a taint added by a later PATCH is the race the kubelet documentation warns of
(kubernetes.io/docs/reference/command-line-tools-reference/kubelet, --register-with-taints).
The node lifecycle controller's own `node.kubernetes.io/*` taints are not counted.
"""

from __future__ import annotations

from testbed.apiserver.store import Object, WatchEvent

SYSTEM_TAINTS = "node.kubernetes.io/"


def _taints(node: Object) -> set[tuple[str, str]]:
    return {
        (str(taint.get("key")), str(taint.get("effect")))
        for taint in node.get("spec", {}).get("taints") or []
        if not str(taint.get("key", "")).startswith(SYSTEM_TAINTS)
    }


class Registrations:
    def __init__(self) -> None:
        self._at_creation: dict[str, set[tuple[str, str]]] = {}
        self._counted: set[str] = set()

    @property
    def registered_untainted(self) -> int:
        return len(self._counted)

    def track(self, event: WatchEvent) -> None:
        if (event.api_version, event.resource) != ("v1", "nodes"):
            return
        name = str(event.object["metadata"]["name"])
        if event.type == "ADDED":
            self._at_creation[name] = _taints(event.object)
        elif event.type == "MODIFIED" and name in self._at_creation:
            if _taints(event.object) - self._at_creation[name]:
                self._counted.add(name)
        elif event.type == "DELETED":
            self._at_creation.pop(name, None)
