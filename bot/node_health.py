"""kubegate's own alert: a node NotReady for longer than allowed. It goes through the same
alert groups as Alertmanager's (one message, updated when the node is Ready again)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from bot.alerts import Alert, AlertmanagerWebhook
from bot.clusters import Clusters
from bot.config import ClusterConfig
from playbooks import OperationError

log = logging.getLogger(__name__)


def node_alert(cluster: str, node: str, *, firing: bool, for_minutes: float) -> AlertmanagerWebhook:
    labels = {"alertname": "NodeNotReady", "node": node, "cluster": cluster, "source": "kubegate"}
    summary = (
        f"{node} has been NotReady for {for_minutes:.0f} min"
        if firing
        else f"{node} is Ready again"
    )
    status = "firing" if firing else "resolved"
    return AlertmanagerWebhook(
        version="4",
        groupKey=f"kubegate/NodeNotReady/{cluster}/{node}",
        status=status,
        commonLabels=labels,
        alerts=[Alert(status=status, labels=labels, annotations={"summary": summary})],
    )


class NodeHealth:
    """Tracks when each node went NotReady; alerts once past the limit, resolves when Ready."""

    def __init__(
        self,
        *,
        cluster_configs: Sequence[ClusterConfig],
        clusters: Clusters,
        not_ready_after: timedelta,
        show: Callable[[AlertmanagerWebhook], Awaitable[None]],
    ) -> None:
        self._cluster_configs = cluster_configs
        self._clusters = clusters
        self._not_ready_after = not_ready_after
        self._show = show
        self._since: dict[tuple[str, str], float] = {}
        self._alerted: set[tuple[str, str]] = set()

    async def check(self) -> None:
        limit = self._not_ready_after.total_seconds()
        for cluster in self._cluster_configs:
            try:
                nodes = await (await self._clusters.handle(cluster.name)).kube.list_nodes()
            except OperationError as error:
                log.warning("node health of %s not checked: %s", cluster.name, error.message)
                continue
            now = time.monotonic()
            for node in nodes:
                key = (cluster.name, node.name)
                if node.ready:
                    self._since.pop(key, None)
                    if key in self._alerted:
                        self._alerted.discard(key)
                        await self._show(
                            node_alert(cluster.name, node.name, firing=False, for_minutes=0)
                        )
                    continue
                since = self._since.setdefault(key, now)
                if now - since >= limit and key not in self._alerted:
                    self._alerted.add(key)
                    hook = node_alert(
                        cluster.name, node.name, firing=True, for_minutes=(now - since) / 60
                    )
                    await self._show(hook)
