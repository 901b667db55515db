"""Evicting pods the way kubectl drain should: in parallel, through the Eviction API, and on a
429 waiting on a PodDisruptionBudget watch (not a fixed sleep) until it allows a disruption.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from playbooks.kube import KubeError, Kubernetes
from playbooks.pods import Pdb, PodView, pdb_view, pod_view

# If a watch event is missed, a blocked eviction is still re-tried this often.
RETRY_FALLBACK_S = 5.0
MAX_PARALLEL_EVICTIONS = 50
GONE_CHECK_S = 2.0  # with no news from the watch, the pods left are looked at this often
WATCH_LAP_S = 60


class PdbWatch:
    """Live `disruptionsAllowed` of every PDB; wakes blocked evictions when one changes."""

    def __init__(self, kube: Kubernetes, pdbs: list[Pdb]) -> None:
        self._kube = kube
        self.pdbs = {pdb.key: pdb for pdb in pdbs}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PdbWatch:
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        while True:
            try:
                async for kind, obj in self._kube.watch_pdbs(timeout_seconds=300):
                    pdb = pdb_view(obj)
                    if kind == "DELETED":
                        self.pdbs.pop(pdb.key, None)
                    else:
                        self.pdbs[pdb.key] = pdb
                    async with self._changed:
                        self._changed.notify_all()
            except KubeError:
                await asyncio.sleep(1)  # the fallback re-try covers the gap

    def guarding(self, pod: PodView) -> list[Pdb]:
        return [pdb for pdb in self.pdbs.values() if pdb.covers(pod)]

    async def wait_for_headroom(self, pod: PodView, *, timeout: float) -> None:
        def allows() -> bool:
            return all(pdb.disruptions_allowed > 0 for pdb in self.guarding(pod))

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(allows)


@dataclass
class EvictionReport:
    evicted: list[PodView] = field(default_factory=list)
    gone_already: list[PodView] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # pod key -> why
    blocked: dict[str, str] = field(default_factory=dict)  # pod key -> the PDB(s) still holding it


async def evict_pods(kube: Kubernetes, pods: list[PodView], *, deadline: float) -> EvictionReport:
    """Evict every pod, each re-tried as soon as its PDB allows, until the monotonic deadline."""
    report = EvictionReport()
    limit = asyncio.Semaphore(MAX_PARALLEL_EVICTIONS)
    async with PdbWatch(kube, [pdb_view(p) for p in await kube.list_pdbs()]) as watch:

        async def evict_one(pod: PodView) -> None:
            async with limit:
                await _evict_until_accepted(kube, watch, pod, deadline=deadline, report=report)

        await asyncio.gather(*(evict_one(pod) for pod in pods))
    return report


async def _evict_until_accepted(
    kube: Kubernetes, watch: PdbWatch, pod: PodView, *, deadline: float, report: EvictionReport
) -> None:
    while True:
        try:
            await kube.evict(pod.namespace, pod.name)
            report.evicted.append(pod)
            return
        except KubeError as error:
            if error.status == 404:
                report.gone_already.append(pod)
                return
            if error.status == 500 and len(watch.guarding(pod)) > 1:
                names = ", ".join(pdb.name for pdb in watch.guarding(pod))
                report.refused[pod.key] = f"several PodDisruptionBudgets match it ({names})"
                return
            if error.status != 429:
                report.refused[pod.key] = error.message
                return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            report.blocked[pod.key] = (
                ", ".join(f"{p.key} ({p.disruptions_allowed} allowed)" for p in watch.guarding(pod))
                or "no PDB"
            )
            return
        await watch.wait_for_headroom(pod, timeout=min(remaining, RETRY_FALLBACK_S))


async def wait_until_gone(
    kube: Kubernetes, node: str, pods: list[PodView], *, deadline: float
) -> list[PodView]:
    """Wait until each pod is deleted (404, or its name now holds another UID); the ones left.

    A watch on the node's pods reports each deletion as it happens. Each (re)started watch
    first lists what exists, so its first event also brings a fresh look at every pod left
    (a deletion between the look and the watch has no event of its own); with no news for
    `GONE_CHECK_S` the pods are looked at anyway."""
    waiting = {pod.key: pod for pod in pods}
    deleted: set[tuple[str, str]] = set()  # (namespace/name, uid) the watch saw go
    news, look_again = asyncio.Event(), asyncio.Event()

    async def follow() -> None:
        while True:
            look_again.set()
            try:
                async for kind, obj in kube.watch_pods_on(node, timeout_seconds=WATCH_LAP_S):
                    if kind == "DELETED":
                        seen = pod_view(obj)
                        deleted.add((seen.key, seen.uid))
                    news.set()
            except KubeError:
                await asyncio.sleep(GONE_CHECK_S)

    async def still_there(pod: PodView) -> bool:
        current = await kube.get_pod(pod.namespace, pod.name)
        return current is not None and pod_view(current).uid == pod.uid

    follower = asyncio.create_task(follow())
    try:
        while True:
            look, timed_out = look_again.is_set(), not news.is_set()
            news.clear()
            look_again.clear()
            for key, pod in list(waiting.items()):
                if (key, pod.uid) in deleted or (
                    (look or timed_out) and not await still_there(pod)
                ):
                    waiting.pop(key)
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                return list(waiting.values())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), timeout=min(GONE_CHECK_S, left))
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
