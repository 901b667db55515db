"""kubegate's own alert: a node NotReady for longer than allowed. It goes through the same
alert groups as Alertmanager's (one message, updated when the node is Ready again)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from bot.alerts import Alert, AlertmanagerWebhook
from playbooks import OperationError

if TYPE_CHECKING:
    from bot.service import Kubegate

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
        version="4", groupKey=f"kubegate/NodeNotReady/{cluster}/{node}", status=status, commonLabels=labels,
        alerts=[Alert(status=status, labels=labels, annotations={"summary": summary})],
    )  # fmt: skip


class NodeHealth:
    """Tracks when each node went NotReady; alerts once past the limit, resolves when Ready."""

    def __init__(self, kubegate: Kubegate) -> None:
        self._kubegate = kubegate
        self._since: dict[tuple[str, str], float] = {}
        self._alerted: set[tuple[str, str]] = set()

    async def check(self) -> None:
        limit = self._kubegate.config.alerts.node_not_ready_after.total_seconds()
        alerts = self._kubegate.alerts
        if alerts is None:
            return
        for cluster in self._kubegate.config.clusters:
            try:
                nodes = await (await self._kubegate.clusters.handle(cluster.name)).kube.list_nodes()
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
                        await alerts.show(
                            node_alert(cluster.name, node.name, firing=False, for_minutes=0)
                        )
                    continue
                since = self._since.setdefault(key, now)
                if now - since >= limit and key not in self._alerted:
                    self._alerted.add(key)
                    hook = node_alert(
                        cluster.name, node.name, firing=True, for_minutes=(now - since) / 60
                    )
                    await alerts.show(hook)
