"""Composition root: settings + config → store, audit, clusters, chat, service; and `serve`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.access import Access
from bot.actions import Clicks, expire_overdue, recover_interrupted
from bot.alerts import Alerts
from bot.audit import AuditLog
from bot.chat import Chat
from bot.clusters import Clusters
from bot.config import ConfigError, KubegateConfig, Settings, config_digest, load_config
from bot.engine import Engine
from bot.housekeeping import (
    BackupFreshness,
    CertExpiry,
    Periodic,
    control_plane_expiries,
    start_housekeeping,
)
from bot.jobcontrol import JobControl
from bot.node_health import NodeHealth
from bot.readonly import ReadOnlyAnswers
from bot.redact import RedactingFilter, Redactor
from bot.requests import ChangeRequests
from bot.roots import RootMessages
from bot.service import CommandDesk, Kubegate
from bot.slack_app import SlackChat, bolt_app, web_application, web_client
from bot.starter import JobStarter
from bot.store import Store
from bot.timing import ChangeCalendar
from bot.work import Background
from playbooks.vault import VaultSettings

log = logging.getLogger("kubegate")


def config_path(settings: Settings) -> Path:
    if settings.config_path is not None:
        return settings.config_path
    if Path("kubegate.yaml").exists():
        return Path("kubegate.yaml")
    raise ConfigError(["KUBEGATE_CONFIG is not set and there is no ./kubegate.yaml"])


@dataclass
class SlackCredentials:
    bot_token: str
    signing_secret: str
    api_url: str | None
    app_token: str | None = None


def slack_credentials(settings: Settings, config: KubegateConfig) -> SlackCredentials:
    token = settings.slack_bot_token or config.slack.bot_token
    secret = settings.slack_signing_secret or config.slack.signing_secret
    problems = []
    if token is None:
        problems.append("SLACK_BOT_TOKEN is not set (nor slack.bot_token in the config)")
    if secret is None:
        problems.append("SLACK_SIGNING_SECRET is not set (nor slack.signing_secret in the config)")
    if problems or token is None or secret is None:
        raise ConfigError(problems)
    app_token = settings.slack_app_token or config.slack.app_token
    return SlackCredentials(
        token.get_secret_value(),
        secret.get_secret_value(),
        settings.slack_api_url or config.slack.api_url,
        app_token.get_secret_value() if app_token else None,
    )


def vault_settings(settings: Settings, config: KubegateConfig) -> VaultSettings | None:
    """Vault from the config, with the usual VAULT_ADDR / VAULT_TOKEN variables winning."""
    vault = config.vault
    url = settings.vault_addr or (vault.url if vault else None)
    if url is None:
        return None
    token = settings.vault_token or (vault.token if vault else None)
    secret_id = vault.secret_id if vault else None
    return VaultSettings(
        url=url,
        auth=vault.auth if vault else "token",
        token=token.get_secret_value() if token else None,
        role_id=vault.role_id if vault else None,
        secret_id=secret_id.get_secret_value() if secret_id else None,
        kubernetes_role=vault.kubernetes_role if vault else None,
        kv_mount=vault.kv_mount if vault else "secret",
        ssh_mount=vault.ssh_mount if vault else "ssh-client-signer",
        ssh_role=vault.ssh_role if vault else "kubegate",
        ca_cert=vault.ca_cert if vault else None,
    )


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

    async def resume_jobs(self) -> None:
        """After a start: show interrupted jobs as such, and set scheduled jobs' timers again."""
        await self.recover()
        self.starter.restore_timers()

    def start_housekeeping(self) -> AsyncIOScheduler:
        return start_housekeeping(self.periodic)

    async def close(self) -> None:
        self.starter.scheduler.shutdown()
        await self.kubegate.idle()
        await self.clusters.close()
        self.store.close()


def setup_logging(redactor: Redactor, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # asyncssh logs every command line at INFO; commands may carry secrets (a join token).
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    # APScheduler logs every periodic run at INFO: noise every 30 s.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def build(
    settings: Settings, *, chat: Callable[[KubegateConfig], Chat], redactor: Redactor | None = None
) -> Runtime:
    path = config_path(settings)
    config = load_config(path)
    redactor = redactor or Redactor()
    for secret in (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        config.slack.bot_token,
        config.slack.signing_secret,
    ):
        redactor.register(secret.get_secret_value() if secret else None)
    store = Store(settings.db)
    audit = AuditLog(store, redactor)
    audit.record("config.loaded", actor="system", path=str(path), sha256=config_digest(path))
    vault = vault_settings(settings, config)
    redactor.register(vault.token if vault else None, vault.secret_id if vault else None)
    backup_dir = settings.backup_dir or config.backups.dir or Path("backups")
    clusters = Clusters(
        config,
        default_kubeconfig=settings.kubeconfig,
        vault=vault,
        backup_dir=backup_dir,
        redactor=redactor,
    )
    alerts_token = settings.alerts_token or config.alerts.token
    redactor.register(alerts_token.get_secret_value() if alerts_token else None)
    return wire(
        Parts(settings, config, store, audit, redactor, chat(config), clusters, backup_dir),
        alerts_token=alerts_token.get_secret_value() if alerts_token else None,
    )


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


def wire(parts: Parts, *, alerts_token: str | None) -> Runtime:
    """The composition root: each piece gets only what it uses, wired here once."""
    config, store, audit, chat, clusters = (
        parts.config,
        parts.store,
        parts.audit,
        parts.chat,
        parts.clusters,
    )
    background = Background(chat=chat, scrub=parts.redactor.text)
    access = Access(roles=config.roles, policy=config.policy, group_members=chat.group_members)
    roots = RootMessages(store=store, chat=chat, access=access)
    calendar = ChangeCalendar(
        maintenance_windows=config.maintenance_windows, freezes=config.freezes
    )
    windows = config.windows.as_windows()
    engine = Engine(
        store=store,
        audit=audit,
        chat=chat,
        clusters=clusters,
        windows=windows,
        refresh_root=roots.refresh,
        active_freeze=calendar.active_freeze,
    )
    starter = JobStarter(
        store=store,
        audit=audit,
        engine=engine,
        windows=windows,
        calendar=calendar,
        refresh_root=roots.refresh,
    )
    desk = CommandDesk(
        clusters=clusters,
        answers=ReadOnlyAnswers(
            store=store,
            audit=audit,
            chat=chat,
            clusters=clusters,
            warn_days=config.certs.warn_days,
        ),
        job_control=JobControl(
            store=store,
            audit=audit,
            chat=chat,
            access=access,
            engine=engine,
            refresh_root=roots.refresh,
            spawner=background,
        ),
        requests=ChangeRequests(
            store=store,
            audit=audit,
            chat=chat,
            clusters=clusters,
            access=access,
            calendar=calendar,
            windows=windows,
            roots=roots,
            starter=starter,
        ),
        background=background,
    )
    alerts = Alerts(
        settings=config.alerts,
        token=alerts_token,
        cluster_configs=config.clusters,
        store=store,
        audit=audit,
        chat=chat,
        clusters=clusters,
        background=background,
    )
    clicks = Clicks(
        store=store,
        audit=audit,
        chat=chat,
        access=access,
        engine=engine,
        starter=starter,
        refresh_root=roots.refresh,
        alerts=alerts,
        commands=desk,
        background=background,
    )
    kubegate = Kubegate(desk=desk, clicks=clicks, background=background)

    async def recover() -> None:
        await recover_interrupted(store, audit, chat, roots.refresh)

    return Runtime(
        settings=parts.settings,
        config=config,
        store=store,
        audit=audit,
        redactor=parts.redactor,
        kubegate=kubegate,
        backup_dir=parts.backup_dir,
        alerts=alerts,
        clusters=clusters,
        starter=starter,
        periodic=periodic_work(parts, alerts=alerts, refresh_root=roots.refresh),
        recover=recover,
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


async def start_http(alerts: Alerts, app: AsyncApp, *, port: int) -> tuple[web.AppRunner, int]:
    """`/slack/events`, `/alerts/alertmanager` and `/healthz` on `port` (0: any free one)."""
    application = web_application(app)
    application.router.add_post("/alerts/alertmanager", alerts.webhook)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=port)  # noqa: S104 — a server
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("kubegate listening on port %s (/slack/events, /alerts/alertmanager, /healthz)", bound)
    return runner, int(bound)


async def serve(
    settings: Settings,
    *,
    redactor: Redactor | None = None,
    ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the Slack app until SIGTERM/SIGINT (or `stop` is set)."""
    redactor = redactor or Redactor()
    session = aiohttp.ClientSession()
    holder: dict[str, SlackChat] = {}

    def slack_chat(config: KubegateConfig) -> Chat:
        credentials = slack_credentials(settings, config)
        holder["chat"] = SlackChat(
            web_client(token=credentials.bot_token, api_url=credentials.api_url, session=session)
        )
        return holder["chat"]

    try:
        runtime = build(settings, chat=slack_chat, redactor=redactor)
    except BaseException:
        await session.close()
        raise
    credentials = slack_credentials(settings, runtime.config)
    app = bolt_app(
        runtime.kubegate, client=holder["chat"].client, signing_secret=credentials.signing_secret
    )
    runner, port = await start_http(runtime.alerts, app, port=settings.port)
    socket_mode = None
    if credentials.app_token:
        # Socket Mode: Slack delivers over a WebSocket kubegate opens; no public endpoint.
        socket_mode = AsyncSocketModeHandler(app, credentials.app_token)
        await socket_mode.connect_async()  # type: ignore[no-untyped-call]
        log.info("connected to Slack in Socket Mode")
    await runtime.resume_jobs()
    scheduler = runtime.start_housekeeping()
    if ready:
        ready(port)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if socket_mode is not None:
        await socket_mode.close_async()  # type: ignore[no-untyped-call]
    scheduler.shutdown(wait=False)
    await runner.cleanup()
    await runtime.close()
    await session.close()
