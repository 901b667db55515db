"""One kube-apiserver of the cluster: its own HTTPS port and version over the shared store, as
every control plane of a kubeadm HA cluster runs its own kube-apiserver static pod against the
same etcd. Stopping it closes its port (connection refused) and cuts its open connections, as a
container that exits does; starting it again takes the seconds a real one needs to be serving.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)
# Requests still running when the API server stops are cut after this long (watches, hangs).
CUT_AFTER_S = 0.2
BIND_ATTEMPTS = 20


class ApiServerEndpoint:
    """Start with `start()`, take down with `stop()`; `serving` says which it is."""

    def __init__(
        self,
        name: str,
        *,
        app_factory: Callable[[ApiServerEndpoint], web.Application],
        version: str,
        host: str = "127.0.0.1",
        port: int = 0,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.version = version
        self.host, self.port = host, port
        self._app_factory = app_factory
        self._on_change = on_change
        # Whether its etcd answers: /healthz and /readyz include that check, /livez does not.
        self.storage_healthy = True
        self._tls: ssl.SSLContext | None = None
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def serving(self) -> bool:
        return self._runner is not None

    def use_certificate(self, cert_path: Path, key_path: Path) -> None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert_path, key_path)
        self._tls = tls

    async def start(self, *, startup_delay: float = 0.0) -> None:
        """Serve on the same port as before (a fresh one the first time), after `startup_delay`
        seconds of starting up during which the port stays closed."""
        async with self._lock:
            if self._runner is not None:
                return
            if startup_delay > 0:
                await asyncio.sleep(startup_delay)
            # Cancelling a handler when its client leaves is what ends abandoned watch streams.
            runner = web.AppRunner(
                self._app_factory(self),
                handler_cancellation=True,
                access_log=None,
                shutdown_timeout=CUT_AFTER_S,
            )
            await runner.setup()
            await self._bind(runner)
            self._runner = runner
            log.info("kube-apiserver on %s serving %s at %s", self.name, self.version, self.url)
        self._on_change()

    async def stop(self) -> None:
        async with self._lock:
            runner, self._runner = self._runner, None
            if runner is None:
                return
            self._on_change()
            await runner.cleanup()
            log.info("kube-apiserver on %s stopped", self.name)

    async def _bind(self, runner: web.AppRunner) -> None:
        # The port was ours before it stopped; wait out a brief race for it rather than move,
        # since the load balancer and kubeconfigs name it.
        deadline = time.monotonic() + 5.0
        for _attempt in range(BIND_ATTEMPTS):
            site = web.TCPSite(runner, self.host, self.port, ssl_context=self._tls)
            try:
                await site.start()
            except OSError:
                if self.port == 0 or time.monotonic() > deadline:
                    await runner.cleanup()
                    raise
                await asyncio.sleep(0.25)
                continue
            self.port = runner.addresses[0][1]
            return
        await runner.cleanup()
        raise OSError(f"kube-apiserver on {self.name}: port {self.port} stays taken")
