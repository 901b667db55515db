"""The clusters kubegate manages: connects to each one's API lazily, from its kubeconfig context."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.config import ClusterConfig, KubegateConfig
from playbooks import ClusterHandle, KubeApi


class Clusters:
    def __init__(self, config: KubegateConfig, *, default_kubeconfig: Path | None) -> None:
        self._config = config
        self._default_kubeconfig = default_kubeconfig
        self._handles: dict[str, ClusterHandle] = {}
        self._lock = asyncio.Lock()

    def resolve(self, *, requested: str | None, channel: str) -> ClusterConfig | str:
        """The cluster a command is for, or a sentence saying why there is none."""
        if requested:
            cluster = self._config.cluster_named(requested)
            if cluster is None:
                known = ", ".join(c.name for c in self._config.clusters)
                return f"There is no cluster `{requested}`. Known clusters: {known}."
            return cluster
        cluster = self._config.cluster_for_channel(channel)
        if cluster is not None:
            return cluster
        if len(self._config.clusters) == 1:
            return self._config.clusters[0]
        return "This channel has no default cluster: add `-c <cluster>` to the command."

    async def handle(self, name: str) -> ClusterHandle:
        async with self._lock:
            if name not in self._handles:
                cluster = self._config.cluster_named(name)
                assert cluster is not None
                kube = await KubeApi.connect(
                    kubeconfig=cluster.kubeconfig or self._default_kubeconfig,
                    context=cluster.context,
                )
                self._handles[name] = ClusterHandle(name=name, kube=kube)
            return self._handles[name]

    async def close(self) -> None:
        for handle in self._handles.values():
            await handle.kube.close()
        self._handles.clear()
