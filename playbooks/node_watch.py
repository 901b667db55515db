"""News of one node: an event set whenever the API reports a change to the Node or to a pod on
it, so that a wait (a health gate, pods to be gone) checks again at once instead of on a timer.

Each watch starts with an ADDED event for what exists (Kubernetes API concepts, "Semantics for
watch"), so a change between the caller's check and the watch's start still wakes the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from playbooks.kube import KubeError, Kubernetes, Obj

WATCH_LAP_S = 60
RETRY_WATCH_S = 2.0  # after a watch broke; the caller's periodic check covers the gap


@contextlib.asynccontextmanager
async def node_changes(kube: Kubernetes, node: str) -> AsyncIterator[asyncio.Event]:
    """An event set whenever the API reports a change to the Node or to a pod on it."""
    changed = asyncio.Event()

    async def keep_following(watch: Callable[..., AsyncIterator[tuple[str, Obj]]]) -> None:
        while True:
            try:
                async for _ in watch(node, timeout_seconds=WATCH_LAP_S):
                    changed.set()
            except KubeError:
                await asyncio.sleep(RETRY_WATCH_S)  # meanwhile the caller's own checks go on

    followers = [
        asyncio.create_task(keep_following(kube.watch_node)),
        asyncio.create_task(keep_following(kube.watch_pods_on)),
    ]
    try:
        yield changed
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
