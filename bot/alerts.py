"""Alerts from Alertmanager: `POST /alerts/alertmanager` (webhook v4, bearer token), one channel
message per Alertmanager group, updated in place when it resolves; alerts about a node get
[Cordon] [Drain] [Silence 1h], and a click starts the normal request flow.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Sequence

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.audit import AuditLog
from bot.chat import ALERT_CORDON, ALERT_DRAIN, ALERT_SILENCE, Button, Card, Chat
from bot.clusters import Clusters
from bot.config import AlertsConfig, ClusterConfig
from bot.markup import escape
from bot.silences import SilenceRecords
from bot.store import Store
from bot.work import Background, CommandReceiver, Spawner, failure_ref, short_reason

log = logging.getLogger(__name__)
NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
MAX_SHOWN = 5


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    fingerprint: str = ""


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook payload, version 4."""

    model_config = ConfigDict(extra="ignore")

    version: str
    groupKey: str
    status: str
    commonLabels: dict[str, str] = Field(default_factory=dict)
    alerts: list[Alert] = Field(min_length=1)


def node_of(alert: Alert) -> str | None:
    return node_of_labels(alert.labels)


def node_of_labels(labels: dict[str, str]) -> str | None:
    """The node an alert is about: label `node`, else `instance` without its port."""
    candidate = labels.get("node") or labels.get("instance", "").rsplit(":", 1)[0]
    return candidate if candidate and NODE_NAME.match(candidate) else None


def alert_card(hook: AlertmanagerWebhook, *, group_id: int, cluster: str, node: str | None) -> Card:
    """Pure: what the channel shows for one Alertmanager group. Labels and annotations are
    whatever reached Alertmanager: shown literally, never as mentions or links."""
    firing = hook.status == "firing"
    name = escape(
        hook.commonLabels.get("alertname") or hook.alerts[0].labels.get("alertname", "alert")
    )
    about = f" · {node}" if node else ""
    headline = f"{'🔥 FIRING' if firing else '✅ RESOLVED'}: {name}{about} · cluster {cluster}"
    lines = []
    for alert in hook.alerts[:MAX_SHOWN]:
        said = alert.annotations.get("summary") or alert.annotations.get("description")
        text = escape(said) if said else name
        lines.append(f"{'🔥' if alert.status == 'firing' else '✅'} {text}")
    if len(hook.alerts) > MAX_SHOWN:
        lines.append(f"… and {len(hook.alerts) - MAX_SHOWN} more")
    labels = escape(", ".join(f"{k}={v}" for k, v in sorted(hook.commonLabels.items())))
    buttons = []
    if firing and node:
        value = f"{group_id}:{node}"
        buttons = [
            Button(f"Cordon {node}", ALERT_CORDON, value),
            Button(f"Drain {node}", ALERT_DRAIN, value),
        ]
        if hook.commonLabels.get("source") != "kubegate":  # Alertmanager can only silence its own
            buttons.append(Button("Silence 1h", ALERT_SILENCE, value))
    return Card(
        headline=headline, sections=["\n".join(lines), f"Labels: {labels}"], buttons=buttons
    )


class Alerts:
    def __init__(
        self,
        *,
        settings: AlertsConfig,
        token: str | None,
        cluster_configs: Sequence[ClusterConfig],
        store: Store,
        audit: AuditLog,
        chat: Chat,
        clusters: Clusters,
        spawner: Spawner,
        members: SilenceRecords,
    ) -> None:
        self._members = members
        self._token = token
        self._channel = settings.channel
        self._cluster_configs = cluster_configs
        self._store = store
        self._audit = audit
        self._chat = chat
        self._clusters = clusters
        self._spawner = spawner
        self._groups: dict[str, asyncio.Lock] = {}  # one writer per group: no double post

    async def webhook(self, request: web.Request) -> web.Response:
        if not self._token:
            return web.json_response({"error": "alerts are not configured (no token)"}, status=503)
        offered = request.headers.get("Authorization", "")
        if not hmac.compare_digest(offered.encode(), f"Bearer {self._token}".encode()):
            log.warning(
                "refused an alert webhook from %s: bad or missing bearer token", request.remote
            )
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            hook = AlertmanagerWebhook.model_validate(await request.json())
        except (ValueError, ValidationError) as error:
            return web.json_response(
                {"error": f"not an Alertmanager v4 webhook: {error}"}, status=400
            )
        if hook.version != "4":
            return web.json_response(
                {"error": f"webhook version {hook.version} is not supported; 4 is"}, status=400
            )
        self._spawner.spawn(self._show_or_say(hook))
        return web.json_response({"ok": True})

    async def _show_or_say(self, hook: AlertmanagerWebhook) -> None:
        """Nobody typed a command for an alert: if showing it fails, the channel hears (when chat
        itself works) and the log has the traceback under the same ref."""
        try:
            await self.show(hook)
        except Exception as error:
            ref = failure_ref()
            log.error(
                "kubegate failed showing alert group %s (ref %s): status %s, alerts %s",
                hook.groupKey,
                ref,
                hook.status,
                [a.labels.get("alertname", "") for a in hook.alerts],
                exc_info=error,
            )
            channel = self._channel or next(
                (c.channels[0] for c in self._cluster_configs if c.channels), None
            )
            if channel is None:
                return
            text = (
                "⚠️ kubegate failed showing an alert from Alertmanager: "
                f"{escape(self._audit.redactor.text(short_reason(error)))}; "
                f"see kubegate's log, ref {ref}"
            )
            try:
                await self._chat.post(channel, Card(text))
            except Exception:
                log.exception("could not tell the channel about failure ref %s", ref)

    async def show(self, hook: AlertmanagerWebhook) -> None:
        async with self._groups.setdefault(hook.groupKey, asyncio.Lock()):
            await self._show(hook)

    async def _show(self, hook: AlertmanagerWebhook) -> None:
        named = hook.commonLabels.get("cluster", "")
        cluster = next((c for c in self._cluster_configs if c.name == named), None)
        cluster = cluster or self._cluster_configs[0]
        channel = self._channel or (cluster.channels[0] if cluster.channels else None)
        if channel is None:
            log.warning("alert group %s has no channel to go to", hook.groupKey)
            return
        nodes = {node_of(a) for a in hook.alerts} - {None}
        node = await self._known_node(cluster.name, nodes.pop()) if len(nodes) == 1 else None
        store = self._store
        group = store.alert_group(hook.groupKey)
        group_id = (
            group["id"]
            if group
            else store.add_alert_group(
                hook.groupKey, cluster=cluster.name, channel=channel, labels=hook.commonLabels
            )
        )
        self._audit.record(
            "alert.received",
            actor="system",
            cluster=cluster.name,
            target=node,
            group=hook.groupKey,
            status=hook.status,
            alerts=[a.labels.get("alertname", "") for a in hook.alerts],
        )
        card = alert_card(hook, group_id=group_id, cluster=cluster.name, node=node)
        if group and group["ts"]:
            await self._chat.update(group["channel"], group["ts"], card)
        else:
            ts = await self._chat.post(channel, card)
            store.set_alert_group_ts(group_id, ts)
        store.set_alert_group_status(group_id, hook.status, node=node)
        # Each alert's own labels: what [Silence 1h] would silence, exactly.
        self._members.remember_alerts(
            group_id, [(a.fingerprint, a.labels, a.status) for a in hook.alerts]
        )

    def home(self, group_id: int) -> tuple[str, list[str]] | None:
        """The cluster an alert group is about, and that cluster's channels."""
        group = self._store.alert_group_by_id(group_id)
        cluster = next(
            (c for c in self._cluster_configs if group and c.name == group["cluster"]), None
        )
        return (cluster.name, list(cluster.channels)) if cluster else None

    async def _known_node(self, cluster: str, name: str | None) -> str | None:
        if name is None:
            return None
        handle = await self._clusters.handle(cluster)
        try:
            return name if await handle.kube.get_node(name) else None
        except Exception:  # an alert must show even when the API is what is broken
            log.exception("cannot check node %s for an alert", name)
            return None


def alert_click(
    *,
    commands: CommandReceiver,
    background: Background,
    home: tuple[str, list[str]] | None,
    user: str,
    channel: str,
    action_id: str,
    value: str,
) -> str | None:
    """[Cordon]/[Drain] start the normal request flow for the clicker, for the alert's cluster
    (`home`: its name and channels), in its own channel: an alert shown in `alerts.channel` is
    requested where that cluster's changes are approved ([Silence 1h] is bot/silence_flow.py's)."""
    group_text, _, node = value.partition(":")
    if home is None or not group_text.isdigit() or not NODE_NAME.match(node):
        return "kubegate does not understand that button."
    cluster, channels = home
    verb = "cordon" if action_id == ALERT_CORDON else "drain"
    where = channel if channel in channels or not channels else channels[0]
    answer = commands.receive_command(user=user, channel=where, text=f"{verb} {node} -c {cluster}")
    if answer.work is not None:
        background.answer_later(answer.work)
    moved = f" (in <#{where}>, where {cluster}'s changes are approved)" if where != channel else ""
    return answer.text + moved
