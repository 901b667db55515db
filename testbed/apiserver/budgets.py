"""PodDisruptionBudgets against the store: which budgets cover a pod, their live counts, and the
disruption controller's status writes.
"""

from __future__ import annotations

from typing import Any

from testbed.apiserver.disruption import BudgetCounts, budget_counts, budget_status, covers
from testbed.apiserver.pods import controller_of
from testbed.apiserver.statuses import set_status
from testbed.apiserver.store import ObjectStore

Object = dict[str, Any]
POLICY = "policy/v1"
PDBS = "poddisruptionbudgets"


class Budgets:
    """Reads budgets, pods and workload scales from one store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def covering(self, pod: Object) -> list[Object]:
        namespace = pod["metadata"].get("namespace")
        return [pdb for pdb in self.store.list(POLICY, PDBS, namespace) if covers(pdb, pod)]

    def counts(self, pdb: Object, pods: list[Object] | None = None) -> BudgetCounts:
        namespace = pdb["metadata"]["namespace"]
        if pods is None:
            pods = self.store.list("v1", "pods", namespace)
        covered = [pod for pod in pods if covers(pdb, pod)]
        return budget_counts(pdb, covered, self._scale_of)

    def sync_all(self, pods: list[Object]) -> None:
        for pdb in self.store.list(POLICY, PDBS):
            status = budget_status(pdb, self.counts(pdb, pods))
            set_status(self.store, POLICY, PDBS, pdb, status)

    def _scale_of(self, pod: Object) -> tuple[str, int] | None:
        """The scale a pod's workload asks for: a Deployment's through its ReplicaSet."""
        ref = controller_of(pod)
        namespace = pod["metadata"].get("namespace")
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        replicaset = self.store.get("apps/v1", "replicasets", namespace, ref.get("name", ""))
        if replicaset is None:
            return None
        owner = controller_of(replicaset)
        if owner is not None and owner.get("kind") == "Deployment":
            deployment = self.store.get("apps/v1", "deployments", namespace, owner["name"])
            if deployment is not None:
                return owner["uid"], int(deployment["spec"].get("replicas", 1))
        return replicaset["metadata"]["uid"], int(replicaset["spec"].get("replicas", 1))
