"""The composition root: which piece of kubegate gets which collaborators, wired here once.

Each piece is handed only what it uses (a store, a chat, a spawner, a root-message refresher…);
no piece reaches through another to find its collaborators. `bot.app.build` makes the parts
that touch the outside world (config, store, Slack, clusters) and calls `wire`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.access import Access
from bot.actions import Clicks, expire_overdue, recover_interrupted
from bot.alerts import Alerts
from bot.audit import AuditLog
from bot.chat import Chat
from bot.clusters import Clusters
from bot.config import KubegateConfig, Settings
from bot.engine import Engine
from bot.housekeeping import (
    BackupFreshness,
    CertExpiry,
    Periodic,
    control_plane_expiries,
    start_housekeeping,
)
from bot.job_buttons import JobNonces, StampedChat
from bot.jobcontrol import JobControl
from bot.lease import JobsLease, LeaseLost
from bot.node_health import NodeHealth
from bot.outbox_delivery import OutboxDelivery
from bot.read_access import ReadAccess
from bot.readonly import ReadOnlyAnswers
from bot.redact import Redactor
from bot.requests import ChangeRequests
from bot.roots import RootMessages
from bot.service import CommandDesk, Kubegate
from bot.silence_flow import SilenceClicks
from bot.silences import SilenceRecords
from bot.slack_health import SlackHealth
from bot.starter import JobStarter
from bot.store import Store
from bot.store_health import StoreWrites
from bot.timing import ChangeCalendar
from bot.work import Background


@dataclass
class Runtime:
    """Everything `build` wired, for `serve`, the console and tests to start and stop."""

    settings: Settings
    config: KubegateConfig
    store: Store
    audit: AuditLog
    redactor: Redactor
    kubegate: Kubegate
    backup_dir: Path
    alerts: Alerts
    clusters: Clusters
    starter: JobStarter
    periodic: list[Periodic]
    recover: Callable[[], Awaitable[None]]
    outbox: OutboxDelivery | None = None
    lease: JobsLease | None = None
    store_writes: StoreWrites | None = None

    def unready(self) -> str | None:
        """Why this kubegate should not be sent work now (for /readyz); None when ready."""
        if self.store_writes is not None and self.store_writes.problem:
            return f"kubegate cannot write its database: {self.store_writes.problem}"
        if self.lease is not None:
            try:
                self.lease.fence()
            except LeaseLost as lost:
                return f"this kubegate does not run jobs: {lost}"
        return None

    async def take_jobs(self, stop: asyncio.Event | None = None) -> bool:
        """Own the jobs of the database before running any (standing by while another
        kubegate does); False when stopped while standing by."""
        return self.lease is None or await self.lease.take(stop)

    async def resume_jobs(self) -> None:
        """After a start: send what the outbox still holds, show interrupted jobs as such, and
        set scheduled jobs' timers again."""
        if self.outbox is not None:
            self.outbox.start()
        await self.recover()
        self.starter.restore_timers()

    def start_housekeeping(self) -> AsyncIOScheduler:
        return start_housekeeping(self.periodic)

    async def close(self) -> None:
        self.starter.scheduler.shutdown()
        await self.kubegate.idle()
        if self.outbox is not None:
            await self.outbox.stop()
        if self.lease is not None:
            await self.lease.release()
        await self.clusters.close()
        self.store.close()


@dataclass
class Parts:
    """What `wire` builds kubegate's pieces from: settings, config and the outside world."""

    settings: Settings
    config: KubegateConfig
    store: Store
    audit: AuditLog
    redactor: Redactor
    chat: Chat
    clusters: Clusters
    backup_dir: Path
    # What jobs speak to (the engine, step replies, root messages): the outbox in `serve`, so
    # a job never waits on Slack; the chat itself when None (the console).
    job_chat: Chat | None = None
    outbox: OutboxDelivery | None = None
    # Whether Slack's Web API takes kubegate's calls (the Slack chat's own); None: the console.
    slack_health: SlackHealth | None = None
    lease: JobsLease | None = None  # `serve`: one process owns the jobs of a database

    @property
    def chat_for_jobs(self) -> Chat:
        return self.job_chat or self.chat


@dataclass(frozen=True)
class Core:
    """The pieces most others are built on; only this module sees them together."""

    parts: Parts
    background: Background
    access: Access
    roots: RootMessages
    calendar: ChangeCalendar
    engine: Engine
    starter: JobStarter
    writes: StoreWrites


def wire(parts: Parts, *, alerts_token: str | None) -> Runtime:
    """Every piece from the parts: the core, the command desk, alerts, clicks, periodic work."""
    nonces = JobNonces(parts.store)
    parts = _stamped(parts, nonces)
    core = _core(parts)
    desk = _command_desk(core)
    alerts, silences = _alerting(parts, core, alerts_token=alerts_token)
    clicks = Clicks(
        store=parts.store,
        audit=parts.audit,
        chat=parts.chat,
        access=core.access,
        engine=core.engine,
        starter=core.starter,
        refresh_root=core.roots.refresh,
        alerts=alerts,
        silences=silences,
        commands=desk,
        background=core.background,
        nonces=nonces,
    )

    async def recover() -> None:
        await recover_interrupted(parts.store, parts.audit, parts.chat_for_jobs, core.roots.refresh)

    return Runtime(
        settings=parts.settings,
        config=parts.config,
        store=parts.store,
        audit=parts.audit,
        redactor=parts.redactor,
        kubegate=Kubegate(desk=desk, clicks=clicks, background=core.background),
        backup_dir=parts.backup_dir,
        alerts=alerts,
        clusters=parts.clusters,
        starter=core.starter,
        periodic=periodic_work(parts, alerts=alerts, refresh_root=core.roots.refresh),
        recover=recover,
        outbox=parts.outbox,
        lease=parts.lease,
        store_writes=core.writes,
    )


def _stamped(parts: Parts, nonces: JobNonces) -> Parts:
    """Every card leaves with its job buttons stamped with the job's nonce, whichever piece
    posts it and whichever way it leaves: straight, or through the outbox."""
    job_chat = StampedChat(parts.job_chat, nonces) if parts.job_chat else None
    return replace(parts, chat=StampedChat(parts.chat, nonces), job_chat=job_chat)


def _alerting(
    parts: Parts, core: Core, *, alerts_token: str | None
) -> tuple[Alerts, SilenceClicks]:
    """Alerts in the channel, and the [Silence 1h] flow under policy."""
    silence_records = SilenceRecords(parts.store)
    alerts = Alerts(
        settings=parts.config.alerts,
        token=alerts_token,
        cluster_configs=parts.config.clusters,
        store=parts.store,
        audit=parts.audit,
        chat=parts.chat,
        clusters=parts.clusters,
        spawner=core.background,
        members=silence_records,
    )
    silences = SilenceClicks(
        records=silence_records,
        store=parts.store,
        access=core.access,
        audit=parts.audit,
        chat=parts.chat,
        alertmanager_url=parts.config.alerts.alertmanager_url,
        approval_window=parts.config.windows.approval,
    )
    return alerts, silences


def _core(parts: Parts) -> Core:
    config, chat = parts.config, parts.chat
    access = Access(roles=config.roles, policy=config.policy, group_members=chat.group_members)
    roots = RootMessages(store=parts.store, chat=parts.chat_for_jobs, access=access)
    calendar = ChangeCalendar(
        maintenance_windows=config.maintenance_windows, freezes=config.freezes
    )
    windows = config.windows.as_windows()
    writes = StoreWrites(chat=chat)  # straight to Slack: the outbox is in the same database
    engine = Engine(
        store=parts.store,
        audit=parts.audit,
        chat=parts.chat_for_jobs,
        clusters=parts.clusters,
        windows=windows,
        refresh_root=roots.refresh,
        active_freeze=calendar.active_freeze,
        fence=parts.lease.fence if parts.lease else lambda: None,
        writes=writes,
    )
    starter = JobStarter(
        store=parts.store,
        audit=parts.audit,
        engine=engine,
        windows=windows,
        calendar=calendar,
        refresh_root=roots.refresh,
    )
    background = Background(chat=chat, scrub=parts.redactor.text)
    return Core(parts, background, access, roots, calendar, engine, starter, writes)


def _command_desk(core: Core) -> CommandDesk:
    parts = core.parts
    store, audit, chat, clusters = parts.store, parts.audit, parts.chat, parts.clusters
    return CommandDesk(
        clusters=clusters,
        answers=ReadOnlyAnswers(
            store=store,
            audit=audit,
            chat=chat,
            clusters=clusters,
            reads=ReadAccess(
                access=core.access,
                audit=audit,
                clusters=[c.name for c in parts.config.clusters],
            ),
            warn_days=parts.config.certs.warn_days,
        ),
        job_control=JobControl(
            store=store,
            audit=audit,
            chat=chat,
            access=core.access,
            engine=core.engine,
            refresh_root=core.roots.refresh,
            spawner=core.background,
        ),
        requests=ChangeRequests(
            store=store,
            audit=audit,
            chat=chat,
            clusters=clusters,
            access=core.access,
            calendar=core.calendar,
            windows=parts.config.windows.as_windows(),
            roots=core.roots,
            starter=core.starter,
        ),
        background=core.background,
        slack=parts.slack_health,
    )


def periodic_work(
    parts: Parts, *, alerts: Alerts, refresh_root: Callable[[int], Awaitable[None]]
) -> list[Periodic]:
    config, audit, chat = parts.config, parts.audit, parts.chat

    async def expire_approvals() -> None:
        await expire_overdue(parts.store, audit, refresh_root)

    freshness = BackupFreshness(
        clusters=config.clusters,
        max_age=config.backups.max_age,
        backup_dir=parts.backup_dir,
        audit=audit,
        chat=chat,
    )
    certs = CertExpiry(
        clusters=config.clusters,
        warn_days=config.certs.warn_days,
        read_expiries=control_plane_expiries(parts.clusters),
        audit=audit,
        chat=chat,
    )
    health = NodeHealth(
        cluster_configs=config.clusters,
        clusters=parts.clusters,
        not_ready_after=config.alerts.node_not_ready_after,
        show=alerts.show,
    )
    cert_every = config.certs.check_every
    return [
        Periodic("expire-approvals", expire_approvals, timedelta(seconds=30)),
        Periodic(
            "etcd-backup-freshness",
            freshness.check,
            config.backups.check_every,
            first_after=timedelta(seconds=10),
        ),
        # First look a few minutes after start (not at once: a restart loop must not flood SSH).
        Periodic(
            "certificate-expiry",
            certs.check,
            cert_every,
            first_after=min(cert_every, timedelta(minutes=5)),
        ),
        Periodic("node-health", health.check, config.alerts.node_check_every),
    ]
