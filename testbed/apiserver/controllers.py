"""The controller manager: on every relevant write, one synchronous pass over the world (garbage
collection, Deployments, ReplicaSets, DaemonSets, scheduling, kubelets, budgets, autoscalers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from testbed.apiserver.autoscaling import sync_autoscaler
from testbed.apiserver.budgets import Budgets
from testbed.apiserver.eviction import Disruptions
from testbed.apiserver.kubelets import Kubelets
from testbed.apiserver.store import ObjectStore, WatchEvent
from testbed.apiserver.workloads import (
    APPS,
    collect_garbage,
    sync_daemonset,
    sync_deployment,
    sync_replicaset,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]
WATCHED = frozenset(
    {
        ("v1", "pods"),
        ("v1", "nodes"),
        (APPS, "deployments"),
        (APPS, "replicasets"),
        (APPS, "daemonsets"),
        ("policy/v1", "poddisruptionbudgets"),
        ("autoscaling/v2", "horizontalpodautoscalers"),
    }
)


class ControllerManager:
    """Level-triggered: a pass reads everything afresh, so coalesced wake-ups lose nothing.
    A pass has no `await` in it, so API requests never see it half done."""

    def __init__(self, store: ObjectStore, kubelets: Kubelets, disruptions: Disruptions) -> None:
        self.store = store
        self.kubelets = kubelets
        self.disruptions = disruptions
        self.budgets: Budgets = disruptions.budgets
        self._pinned: dict[str, list[str]] = {}
        self._wake = asyncio.Event()
        self._passed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        store.on_write(self._notice)

    def start(self) -> None:
        self._wake.set()  # one pass at start: seeded objects need their controllers too
        self._task = asyncio.create_task(self._run(), name="apiserver-controllers")

    async def stop(self) -> None:
        self.kubelets.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float) -> None:
        """Return once `condition()` holds after some pass; TimeoutError after `timeout` s."""
        async with asyncio.timeout(timeout):
            while not condition():
                await self._passed.wait()

    def _notice(self, event: WatchEvent) -> None:
        if (event.api_version, event.resource) in WATCHED:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self.reconcile()
            except Exception:
                log.exception("testbed controllers failed a pass; the next write retries")
            # Wake every waiter once, then arm a fresh event for the next pass.
            passed, self._passed = self._passed, asyncio.Event()
            passed.set()

    def reconcile(self) -> None:
        store = self.store
        nodes = store.list("v1", "nodes")
        deployments = store.list(APPS, "deployments")
        daemonsets = store.list(APPS, "daemonsets")
        replicasets = store.list(APPS, "replicasets")
        owners = {o["metadata"]["uid"] for o in [*nodes, *deployments, *daemonsets, *replicasets]}
        collect_garbage(
            store,
            owners=owners,
            replicasets=replicasets,
            pods=store.list("v1", "pods"),
            delete_pod=self._delete_pod,
        )
        for deployment in deployments:
            sync_deployment(store, deployment, replicasets)
        pods = store.list("v1", "pods")
        for replicaset in store.list(APPS, "replicasets"):
            sync_replicaset(
                store, replicaset, pods, delete_pod=self._delete_pod, pinned=self._pinned
            )
        for daemonset in daemonsets:
            sync_daemonset(store, daemonset, pods, nodes)
        pods = store.list("v1", "pods")
        self.kubelets.schedule(pods, nodes)
        self.kubelets.tend(pods, nodes)
        self.budgets.sync_all(store.list("v1", "pods"))
        for hpa in store.list("autoscaling/v2", "horizontalpodautoscalers"):
            sync_autoscaler(store, hpa)

    def _delete_pod(self, namespace: str, name: str) -> None:
        self.disruptions.begin_deletion(namespace, name)
