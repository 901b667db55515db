"""Pod deletion with a grace period and the policy/v1 Eviction subresource, as the pod registry
does them, plus the count of every API-initiated disruption that broke a budget.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from testbed.apiserver.budgets import PDBS, POLICY, Budgets
from testbed.apiserver.errors import ApiError, bad_request, conflict
from testbed.apiserver.pods import is_finished, is_healthy, is_ready, is_terminating
from testbed.apiserver.store import ObjectStore
from testbed.apiserver.timestamps import rfc3339

Object = dict[str, Any]
EVICTION_VERSIONS = frozenset({"policy/v1", "policy/v1beta1"})
SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
VIOLATES = "Cannot evict pod as it would violate the pod's disruption budget."
SEVERAL_BUDGETS = (
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not "
    "support."
)


def too_many_requests(cause: str, *, retry_after: int = 0) -> ApiError:
    details: Object = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return ApiError(429, "TooManyRequests", VIOLATES, details=details)


def can_ignore_budget(pod: Object) -> bool:
    """eviction.go canIgnorePDB: finished, pending or already deleting pods go regardless."""
    phase = pod.get("status", {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or is_terminating(pod)


def _check_preconditions(pod: Object, options: Object) -> None:
    wanted = options.get("preconditions") or {}
    metadata = pod["metadata"]
    uid, version = wanted.get("uid"), wanted.get("resourceVersion")
    if (uid and uid != metadata["uid"]) or (version and version != metadata["resourceVersion"]):
        raise conflict("pods", metadata["name"])


class Disruptions:
    """Graceful pod deletion and eviction; `violations` counts budgets broken through the API."""

    def __init__(self, store: ObjectStore, budgets: Budgets) -> None:
        self.store = store
        self.budgets = budgets
        self.violations = 0

    def begin_deletion(self, namespace: str, name: str, *, grace: int | None = None) -> Object:
        """Mark the pod Terminating; its kubelet removes it later. Unbound or finished pods,
        and a grace period of 0, are removed at once, as the pod registry does."""
        pod = self.store.require("v1", "pods", namespace, name)
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        if not pod["spec"].get("nodeName") or is_finished(pod) or grace <= 0:
            return self.store.delete("v1", "pods", namespace, name)
        if is_terminating(pod) and grace >= int(pod["metadata"]["deletionGracePeriodSeconds"]):
            return pod  # a second DELETE may only shorten the grace period

        def mark(current: Object) -> Object:
            deadline = datetime.now(UTC) + timedelta(seconds=grace)
            current["metadata"]["deletionTimestamp"] = rfc3339(deadline)
            current["metadata"]["deletionGracePeriodSeconds"] = grace
            return current

        return self.store.update("v1", "pods", namespace, name, mark)

    def delete(self, namespace: str, name: str, options: Object) -> Object:
        """A DELETE through the API: no budget is consulted, but a broken one is counted."""
        before = self.store.require("v1", "pods", namespace, name)
        _check_preconditions(before, options)
        if options.get("dryRun"):
            return before
        grace = options.get("gracePeriodSeconds")
        result = self.begin_deletion(namespace, name, grace=None if grace is None else int(grace))
        self._count_violations(before)
        return result

    async def evict(
        self, _store: ObjectStore, namespace: str | None, name: str, body: Object
    ) -> tuple[int, Object]:
        """POST pods/{name}/eviction, as pkg/registry/core/pod/storage/eviction.go decides."""
        if not isinstance(body, dict) or body.get("kind", "Eviction") != "Eviction":
            raise bad_request("not a Eviction object")
        if body.get("apiVersion", "policy/v1") not in EVICTION_VERSIONS:
            raise bad_request(f"unsupported Eviction apiVersion {body.get('apiVersion')!r}")
        if (body.get("metadata") or {}).get("name") != name:
            raise bad_request("name in URL does not match name in Eviction object")
        namespace = namespace or ""
        pod = self.store.require("v1", "pods", namespace, name)
        options = body.get("deleteOptions") or {}
        _check_preconditions(pod, options)
        dry_run = bool(options.get("dryRun"))
        if not can_ignore_budget(pod):
            budgets = self.budgets.covering(pod)
            if len(budgets) > 1:
                failure: Object = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
                failure.update(status="Failure", message=SEVERAL_BUDGETS, code=500)
                return 500, failure
            if budgets:
                self._take_from_budget(budgets[0], pod, dry_run=dry_run)
        if not dry_run:
            grace = options.get("gracePeriodSeconds")
            self.begin_deletion(namespace, name, grace=None if grace is None else int(grace))
            self._count_violations(pod)
        return 201, dict(SUCCESS)

    def _take_from_budget(self, pdb: Object, pod: Object, *, dry_run: bool) -> None:
        """checkAndDecrement: refuse with 429 at zero, else spend one disruption at once, so
        that a concurrent eviction already sees the smaller budget."""
        status = pdb.get("status") or {}
        current, desired = status.get("currentHealthy", 0), status.get("desiredHealthy", 0)
        if not is_ready(pod) and current >= desired and desired > 0:
            return  # an unready pod is not healthy: taking it costs the budget nothing
        name = pdb["metadata"]["name"]
        if status.get("observedGeneration", 0) < pdb["metadata"].get("generation", 1):
            raise too_many_requests(
                f"The disruption budget {name} is still being processed by the server.",
                retry_after=10,
            )
        allowed = int(status.get("disruptionsAllowed", 0))
        if allowed < 0:
            raise ApiError(
                403,
                "Forbidden",
                f'poddisruptionbudgets.policy "{name}" is forbidden: '
                "pdb disruptions allowed is negative",
            )
        if allowed == 0:
            raise too_many_requests(
                f"The disruption budget {name} needs {desired} healthy pods and has "
                f"{current} currently"
            )
        if dry_run:
            return

        def spend(current_pdb: Object) -> Object:
            spent = current_pdb.setdefault("status", {})
            spent["disruptionsAllowed"] = int(spent.get("disruptionsAllowed", 0)) - 1
            spent.setdefault("disruptedPods", {})[pod["metadata"]["name"]] = rfc3339()
            return current_pdb

        self.store.update(POLICY, PDBS, pdb["metadata"]["namespace"], name, spend)

    def _count_violations(self, before: Object) -> None:
        """A healthy pod just left: count each budget of it now below its desired health."""
        if not is_healthy(before):
            return
        for pdb in self.budgets.covering(before):
            counts = self.budgets.counts(pdb)
            if counts.current < counts.desired:
                self.violations += 1
