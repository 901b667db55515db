"""Periodic work (APScheduler): expire stale approvals, warn when the etcd backup is too old."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.actions import expire_overdue
from bot.chat import Card
from bot.service import Kubegate
from playbooks.etcd_backup import SNAPSHOT_GLOB


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


def start_housekeeping(kubegate: Kubegate, *, backup_dir: Path) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(expire_overdue, "interval", seconds=30, args=[kubegate], id="expire-approvals",
                      max_instances=1, coalesce=True)  # fmt: skip
    freshness = BackupFreshness(kubegate, backup_dir=backup_dir)
    every = kubegate.config.backups.check_every.total_seconds()
    scheduler.add_job(freshness.check, "interval", seconds=every, id="etcd-backup-freshness",
                      max_instances=1, coalesce=True,
                      next_run_time=datetime.now(UTC) + timedelta(seconds=10))  # fmt: skip
    scheduler.start()
    return scheduler
