"""Composition root: settings + config → store, audit, clusters, chat, service; and `serve`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.alerts import Alerts
from bot.audit import AuditLog
from bot.audit_setup import open_audited_store, prefetch_audit_key
from bot.chat import Chat
from bot.clusters import Clusters
from bot.config import (
    ConfigError,
    KubegateConfig,
    Settings,
    config_digest,
    config_path,
    load_config,
    vault_settings,
)
from bot.lease import JobsLease
from bot.outbox import OutboxChat, OutboxRows
from bot.outbox_delivery import OutboxDelivery
from bot.redact import RedactingFilter, Redactor
from bot.slack_app import SlackChat, bolt_app, web_application, web_client
from bot.wiring import Parts, wire
from bot.wiring import Runtime as Runtime  # re-exported: what `build` returns
from playbooks.kube import build_api_classes

log = logging.getLogger("kubegate")


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
    settings: Settings,
    *,
    chat: Callable[[KubegateConfig], Chat],
    redactor: Redactor | None = None,
    outbox: bool = False,
) -> Runtime:
    """Every part of kubegate; with `outbox`, jobs speak to Slack through the stored outbox."""
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
    store = open_audited_store(settings, config, redactor=redactor)  # keyed, anchored, 0600
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
    parts = Parts(settings, config, store, audit, redactor, chat(config), clusters, backup_dir)
    if isinstance(parts.chat, SlackChat):
        parts.slack_health = parts.chat.health
    if outbox:
        rows = OutboxRows(store)
        parts.job_chat = OutboxChat(rows, parts.chat)
        parts.outbox = OutboxDelivery(rows, parts.chat)
        parts.lease = JobsLease(store)
    return wire(
        parts,
        alerts_token=alerts_token.get_secret_value() if alerts_token else None,
    )


async def start_http(
    alerts: Alerts,
    app: AsyncApp,
    *,
    port: int,
    signing_secret: str,
    unready: Callable[[], str | None] = lambda: None,
) -> tuple[web.AppRunner, int]:
    """`/slack/events`, `/alerts/alertmanager`, `/healthz` and `/readyz` on `port` (0: any
    free one). `/readyz` fails (503, with the reason) while kubegate cannot write its database
    or does not own the jobs; `/healthz` only says the process answers."""

    async def readyz(_request: web.Request) -> web.Response:
        reason = unready()
        if reason:
            return web.Response(status=503, text=reason + "\n")
        return web.Response(text="ready\n")

    application = web_application(app, signing_secret=signing_secret)
    application.router.add_post("/alerts/alertmanager", alerts.webhook)
    application.router.add_get("/readyz", readyz)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=port)  # noqa: S104 — a server
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("kubegate listening on port %s (/slack/events, /alerts/alertmanager, /healthz)", bound)
    return runner, int(bound)


async def standing_by(runtime: Runtime, *, port: int, stop: asyncio.Event) -> bool:
    """Own the jobs before serving Slack. A second kubegate on the same database waits here
    (said in its log) and answers only probes meanwhile: `/healthz` 200, `/readyz` 503 naming
    the owner. False when stopped while standing by."""
    owner = runtime.lease.try_take() if runtime.lease is not None else None
    if owner is None:  # free (now this process's), or no lease in this mode
        return await runtime.take_jobs(stop)
    reason = f"standing by: another kubegate ({owner.describe()}) runs the jobs\n"

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(status=503, text=reason)

    probes = web.Application()
    probes.router.add_get("/healthz", healthz)
    probes.router.add_get("/readyz", readyz)
    runner = web.AppRunner(probes, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host="0.0.0.0", port=port).start()  # noqa: S104 — a server
    try:
        return await runtime.take_jobs(stop)
    finally:
        await runner.cleanup()


async def freeze_start_up_heap() -> None:
    """What start-up built lives as long as the process; frozen, a full garbage collection no
    longer walks it (100-150 ms with the Kubernetes client loaded: a pause for every ack). The
    client's lazily built parts are built first, so that they are frozen with the rest."""
    await build_api_classes()
    gc.collect()
    gc.freeze()


def stop_on_signals() -> asyncio.Event:
    """An event SIGTERM or SIGINT sets: kubegate then stops cleanly (hands its lease over)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


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
        await prefetch_audit_key(settings)  # a Vault-held key, fetched without blocking the loop
        runtime = build(settings, chat=slack_chat, redactor=redactor, outbox=True)
    except BaseException:
        await session.close()
        raise
    stop = stop or stop_on_signals()
    if not await standing_by(runtime, port=settings.port, stop=stop):
        await runtime.close()
        await session.close()
        return
    credentials = slack_credentials(settings, runtime.config)
    app = bolt_app(
        runtime.kubegate, client=holder["chat"].client, signing_secret=credentials.signing_secret
    )
    runner, port = await start_http(
        runtime.alerts,
        app,
        port=settings.port,
        signing_secret=credentials.signing_secret,
        unready=runtime.unready,
    )
    socket_mode = None
    if credentials.app_token:
        # Socket Mode: Slack delivers over a WebSocket kubegate opens; no public endpoint.
        socket_mode = AsyncSocketModeHandler(app, credentials.app_token)
        await socket_mode.connect_async()  # type: ignore[no-untyped-call]
        log.info("connected to Slack in Socket Mode")
    await runtime.resume_jobs()
    scheduler = runtime.start_housekeeping()
    await freeze_start_up_heap()
    if ready:
        ready(port)
    await stop.wait()
    if socket_mode is not None:
        await socket_mode.close_async()  # type: ignore[no-untyped-call]
    scheduler.shutdown(wait=False)
    await runner.cleanup()
    await runtime.close()
    await session.close()
