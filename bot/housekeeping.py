"""Periodic work (APScheduler): expire stale approvals, warn when the etcd backup is too old or
a control-plane certificate nears its expiry."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.audit import AuditLog
from bot.chat import Card, ChannelPoster
from bot.clusters import Clusters
from bot.config import ClusterConfig
from playbooks import OperationError
from playbooks.cert_checks import (
    KUBELET_CLIENT,
    NodeExpiry,
    check_expiration,
    control_plane_targets,
    kubelet_expiries,
)
from playbooks.certs_table import CertificateRow, left_words, threshold_crossed
from playbooks.etcd_backup import SNAPSHOT_GLOB

log = logging.getLogger(__name__)
ExpiryReader = Callable[[str], Awaitable[list[NodeExpiry]]]


def newest_backup_age(directory: Path) -> float | None:
    """Seconds since the newest snapshot in `directory` was written; None if there is none."""
    snapshots = list(directory.glob(SNAPSHOT_GLOB)) if directory.is_dir() else []
    if not snapshots:
        return None
    return time.time() - max(path.stat().st_mtime for path in snapshots)


class BackupFreshness:
    """Posts once per cluster when its newest etcd backup grows older than allowed."""

    def __init__(
        self,
        *,
        clusters: Sequence[ClusterConfig],
        max_age: timedelta,
        backup_dir: Path,
        audit: AuditLog,
        chat: ChannelPoster,
    ) -> None:
        self._clusters = clusters
        self._max_age = max_age
        self._backup_dir = backup_dir
        self._audit = audit
        self._chat = chat
        self._warned: set[str] = set()

    async def check(self) -> None:
        limit = self._max_age.total_seconds()
        for cluster in self._clusters:
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
            self._audit.record(
                "alert",
                actor="system",
                cluster=cluster.name,
                target="etcd",
                kind="etcd-backup-stale",
                age_s=age,
            )
            card = Card(
                headline=f"⚠️ Cluster {cluster.name}: {how_old} (allowed: {limit / 3600:.0f} h)",
                sections=["Take one with `/kube backup etcd`."],
            )
            await self._chat.post(cluster.channels[0], card)


class CertExpiry:
    """Posts once per warning threshold a cluster's soonest certificate crosses (30, then 14,
    then 7 days); a rotation that moves it past every threshold starts the count again."""

    def __init__(
        self,
        *,
        clusters: Sequence[ClusterConfig],
        warn_days: Sequence[int],
        read_expiries: ExpiryReader,
        audit: AuditLog,
        chat: ChannelPoster,
    ) -> None:
        self._clusters = clusters
        self._warn_days = warn_days
        self._read_expiries = read_expiries
        self._audit = audit
        self._chat = chat
        self._announced: dict[str, int] = {}  # cluster -> the most urgent threshold posted

    async def check(self) -> None:
        for cluster in self._clusters:
            if not cluster.channels:
                continue
            try:
                expiries = await self._read_expiries(cluster.name)
            except OperationError as error:
                log.warning("certificate expiry check of %s failed: %s", cluster.name, error)
                continue
            await self.consider(cluster.name, cluster.channels[0], expiries)

    async def consider(self, cluster: str, channel: str, expiries: list[NodeExpiry]) -> None:
        soonest = min(
            ((e.node, row) for e in expiries if (row := e.table.soonest()) is not None),
            key=lambda pair: pair[1].expires,
            default=None,
        )
        if soonest is None:
            return
        node, row = soonest
        days = row.days_left(datetime.now(UTC))
        crossed = threshold_crossed(days, self._warn_days)
        if crossed is None:
            self._announced.pop(cluster, None)
            return
        if crossed >= self._announced.get(cluster, crossed + 1):
            return  # this threshold (or a more urgent one) was said already
        self._announced[cluster] = crossed
        await self._post(cluster, channel, node, row, days, crossed)

    async def _post(
        self, cluster: str, channel: str, node: str, row: CertificateRow, days: float, crossed: int
    ) -> None:
        self._audit.record(
            "alert",
            actor="system",
            cluster=cluster,
            target=node,
            kind="certificate-expiring",
            certificate=row.name,
            expires=row.expires.isoformat(),
            threshold_days=crossed,
        )
        left = "has EXPIRED" if days < 0 else f"expires in {left_words(days)}"
        renew = "renew with `/kube rotate certs`"
        if row.name == KUBELET_CLIENT:  # the kubelet renews its own (rotateCertificates)
            renew = f"the kubelet renews it itself: look at `journalctl -u kubelet` on {node}"
        card = Card(
            headline=f"⚠️ Cluster {cluster}: certificate {row.name} on {node} {left} "
            f"({row.expires:%Y-%m-%d %H:%M} UTC; warning at {crossed} days)",
            sections=[f"`/kube certs` shows them all; {renew}."],
        )
        await self._chat.post(channel, card)


def control_plane_expiries(clusters: Clusters) -> ExpiryReader:
    """Reads each control plane's `kubeadm certs check-expiration` and every node's kubelet
    client certificate over SSH."""

    async def read(cluster: str) -> list[NodeExpiry]:
        handle = await clusters.handle(cluster)
        planes = [await check_expiration(handle, t) for t in await control_plane_targets(handle)]
        kubelets, problems = await kubelet_expiries(handle)
        for problem in problems:
            log.warning("kubelet certificate expiry of %s: %s", cluster, problem)
        return planes + kubelets

    return read


@dataclass(frozen=True)
class Periodic:
    """One piece of periodic work: what to run and how often."""

    name: str
    run: Callable[[], Awaitable[None]]
    every: timedelta
    first_after: timedelta | None = None  # None: at the first interval


def start_housekeeping(work: Sequence[Periodic]) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    for periodic in work:
        first = (
            datetime.now(UTC) + periodic.first_after if periodic.first_after is not None else None
        )
        options = {"next_run_time": first} if first is not None else {}
        scheduler.add_job(
            periodic.run,
            "interval",
            seconds=periodic.every.total_seconds(),
            id=periodic.name,
            max_instances=1,
            coalesce=True,
            **options,
        )
    scheduler.start()
    return scheduler
