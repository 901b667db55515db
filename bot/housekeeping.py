"""Periodic work (APScheduler): expire stale approvals, warn when the etcd backup is too old or
a control-plane certificate nears its expiry."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.actions import expire_overdue
from bot.chat import Card
from bot.node_health import NodeHealth
from bot.service import Kubegate
from playbooks import OperationError
from playbooks.cert_checks import NodeExpiry, check_expiration, control_plane_targets
from playbooks.certs_table import CertificateRow, left_words, threshold_crossed
from playbooks.etcd_backup import SNAPSHOT_GLOB

log = logging.getLogger(__name__)


def newest_backup_age(directory: Path) -> float | None:
    """Seconds since the newest snapshot in `directory` was written; None if there is none."""
    snapshots = list(directory.glob(SNAPSHOT_GLOB)) if directory.is_dir() else []
    if not snapshots:
        return None
    return time.time() - max(path.stat().st_mtime for path in snapshots)


class BackupFreshness:
    """Posts once per cluster when its newest etcd backup grows older than allowed."""

    def __init__(self, kubegate: Kubegate, *, backup_dir: Path) -> None:
        self._kubegate = kubegate
        self._backup_dir = backup_dir
        self._warned: set[str] = set()

    async def check(self) -> None:
        config = self._kubegate.config
        limit = config.backups.max_age.total_seconds()
        for cluster in config.clusters:
            if not cluster.channels:
                continue
            age = newest_backup_age(self._backup_dir / cluster.name)
            if age is not None and age <= limit:
                self._warned.discard(cluster.name)
                continue
            if cluster.name in self._warned:
                continue  # said once; say again only after a fresh backup went stale
            self._warned.add(cluster.name)
            how_old = (
                "no etcd backup exists yet"
                if age is None
                else f"the newest etcd backup is {age / 3600:.1f} h old"
            )
            self._kubegate.audit.record("alert", actor="system", cluster=cluster.name, target="etcd",
                                        kind="etcd-backup-stale", age_s=age)  # fmt: skip
            card = Card(headline=f"⚠️ Cluster {cluster.name}: {how_old} (allowed: {limit / 3600:.0f} h)",
                        sections=["Take one with `/kube backup etcd`."])  # fmt: skip
            await self._kubegate.chat.post(cluster.channels[0], card)


class CertExpiry:
    """Posts once per warning threshold a cluster's soonest certificate crosses (30, then 14,
    then 7 days); a rotation that moves it past every threshold starts the count again."""

    def __init__(self, kubegate: Kubegate) -> None:
        self._kubegate = kubegate
        self._announced: dict[str, int] = {}  # cluster -> the most urgent threshold posted

    async def check(self) -> None:
        for cluster in self._kubegate.config.clusters:
            if not cluster.channels:
                continue
            try:
                expiries = await self._read(cluster.name)
            except OperationError as error:
                log.warning("certificate expiry check of %s failed: %s", cluster.name, error)
                continue
            await self.consider(cluster.name, cluster.channels[0], expiries)

    async def _read(self, cluster: str) -> list[NodeExpiry]:
        handle = await self._kubegate.clusters.handle(cluster)
        return [await check_expiration(handle, t) for t in await control_plane_targets(handle)]

    async def consider(self, cluster: str, channel: str, expiries: list[NodeExpiry]) -> None:
        soonest = min(
            ((e.node, row) for e in expiries if (row := e.table.soonest()) is not None),
            key=lambda pair: pair[1].expires, default=None,
        )  # fmt: skip
        if soonest is None:
            return
        node, row = soonest
        days = row.days_left(datetime.now(UTC))
        crossed = threshold_crossed(days, self._kubegate.config.certs.warn_days)
        if crossed is None:
            self._announced.pop(cluster, None)
            return
        if crossed >= self._announced.get(cluster, crossed + 1):
            return  # this threshold (or a more urgent one) was said already
        self._announced[cluster] = crossed
        await self._post(cluster, channel, node, row, days, crossed)

    async def _post(self, cluster: str, channel: str, node: str, row: CertificateRow,
                    days: float, crossed: int) -> None:  # fmt: skip
        self._kubegate.audit.record("alert", actor="system", cluster=cluster, target=node,
                                    kind="certificate-expiring", certificate=row.name,
                                    expires=row.expires.isoformat(), threshold_days=crossed)  # fmt: skip
        left = "has EXPIRED" if days < 0 else f"expires in {left_words(days)}"
        card = Card(headline=f"⚠️ Cluster {cluster}: certificate {row.name} on {node} {left} "
                             f"({row.expires:%Y-%m-%d %H:%M} UTC; warning at {crossed} days)",
                    sections=["`/kube certs` shows them all; renew with `/kube rotate certs`."])  # fmt: skip
        await self._kubegate.chat.post(channel, card)


def start_housekeeping(kubegate: Kubegate, *, backup_dir: Path) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(expire_overdue, "interval", seconds=30, args=[kubegate], id="expire-approvals",
                      max_instances=1, coalesce=True)  # fmt: skip
    freshness = BackupFreshness(kubegate, backup_dir=backup_dir)
    every = kubegate.config.backups.check_every.total_seconds()
    scheduler.add_job(freshness.check, "interval", seconds=every, id="etcd-backup-freshness",
                      max_instances=1, coalesce=True,
                      next_run_time=datetime.now(UTC) + timedelta(seconds=10))  # fmt: skip
    certs = CertExpiry(kubegate)
    every = kubegate.config.certs.check_every.total_seconds()
    # First look a few minutes after start (not at once: a restart loop must not flood SSH).
    scheduler.add_job(certs.check, "interval", seconds=every, id="certificate-expiry",
                      max_instances=1, coalesce=True,
                      next_run_time=datetime.now(UTC) + timedelta(seconds=min(every, 300)))  # fmt: skip
    health = NodeHealth(kubegate)
    every = kubegate.config.alerts.node_check_every.total_seconds()
    scheduler.add_job(
        health.check, "interval", seconds=every, id="node-health", max_instances=1, coalesce=True
    )
    scheduler.start()
    return scheduler
