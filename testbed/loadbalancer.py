"""The control-plane endpoint of an HA testbed: a TCP load balancer in front of the API servers,
configured as kubeadm's HA guide configures HAProxy (kubernetes/kubeadm,
docs/ha-considerations.md, "haproxy configuration"): `mode tcp`, `balance roundrobin`, and a
health check `http-check connect ssl` / `http-check send meth GET uri /healthz` /
`http-check expect status 200` with `check verify none` on every server. TLS passes through
untouched, so clients see the API servers' own certificates. A connection that cannot reach
its server is tried on the next one that is up (HAProxy's `retries` with `option redispatch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
CONNECT_TIMEOUT_S = 2.0


@dataclass
class Backend:
    name: str
    address: Callable[[], tuple[str, int]]  # read at every use: a server keeps its port
    up: bool = False


class LoadBalancer:
    """`await start()`; `url` is the endpoint clients use; `backends` name the API servers."""

    def __init__(
        self,
        backends: dict[str, Callable[[], tuple[str, int]]],
        *,
        host: str = "127.0.0.1",
        check_interval: float = 0.2,
        check_timeout: float = 1.0,
    ) -> None:
        self.backends = [Backend(name, address) for name, address in backends.items()]
        self.host = host
        self.port = 0
        self.check_interval = check_interval
        self.check_timeout = check_timeout
        self._server: asyncio.Server | None = None
        self._checks: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._next = 0
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # for the health checks
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def add_backend(self, name: str, address: Callable[[], tuple[str, int]]) -> None:
        """A server added at runtime, as an operator adds a joined control plane to HAProxy's
        backend and reloads it; health-checked from the next round on."""
        self.backends = [*self.backends, Backend(name, address)]

    def description(self) -> dict[str, bool]:
        return {backend.name: backend.up for backend in self.backends}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        await self.check_all()
        self._checks = asyncio.create_task(self._check_forever(), name="loadbalancer-checks")

    async def stop(self) -> None:
        if self._checks is not None:
            self._checks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checks
            self._checks = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def check_all(self) -> None:
        # verify none, as in the guide: the check asks only whether it answers 200. One context
        # for every check: making one loads the system's CA store (~20 ms on the shared loop).
        tls = self._tls
        timeout = aiohttp.ClientTimeout(total=self.check_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._check(session, tls, b) for b in self.backends))

    async def _check(
        self, session: aiohttp.ClientSession, tls: ssl.SSLContext, backend: Backend
    ) -> None:
        host, port = backend.address()
        try:
            async with session.get(f"https://{host}:{port}/healthz", ssl=tls) as response:
                healthy = response.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            healthy = False
        if healthy != backend.up:
            log.info("load balancer: %s is %s", backend.name, "up" if healthy else "down")
        backend.up = healthy

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            await self.check_all()

    def _candidates(self) -> list[Backend]:
        """Round robin over the servers that are up, then the rest as a last resort."""
        count = len(self.backends)
        start = self._next % count
        self._next += 1
        ordered = self.backends[start:] + self.backends[:start]
        return [b for b in ordered if b.up] + [b for b in ordered if not b.up]

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._forward(client_in, client_out)
        finally:
            self._connections.discard(task)
            client_out.close()

    async def _forward(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        for backend in self._candidates():
            host, port = backend.address()
            try:
                server_in, server_out = await asyncio.wait_for(
                    asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                backend.up = False  # until its next check says otherwise
                continue
            try:
                await _splice(client_in, client_out, server_in, server_out)
            finally:
                server_out.close()
            return
        log.warning("load balancer: no API server is up; connection closed")


async def _splice(
    client_in: asyncio.StreamReader,
    client_out: asyncio.StreamWriter,
    server_in: asyncio.StreamReader,
    server_out: asyncio.StreamWriter,
) -> None:
    """Copy both ways until either side closes, then close both (the server going away cuts
    its clients' connections, as it does through HAProxy)."""
    directions = [
        asyncio.create_task(_copy(client_in, server_out)),
        asyncio.create_task(_copy(server_in, client_out)),
    ]
    try:
        await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for direction in directions:
            direction.cancel()
        await asyncio.gather(*directions, return_exceptions=True)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
