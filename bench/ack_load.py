"""The load side of `bench.ack`: N concurrent clients posting signed slash commands, timed.

Runs in its own process (see `bench.ack`), so the clients' CPU (signing, HTTP parsing) is not
spent on the event loop of the app being measured. Imports nothing of kubegate.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass

import aiohttp

from testbed.slack.signing import signed_headers

TIMEOUT_S = 10.0  # well past Slack's 3 s, so a slow ack is measured rather than cut off


@dataclass(frozen=True)
class Sample:
    """One request: send → whole response read, its status (0 if it never answered)."""

    seconds: float
    status: int
    error: str = ""


def run_load(
    *, url: str, signing_secret: str, bodies: list[bytes], concurrency: int, warmup: int
) -> list[Sample]:
    """Post `bodies` with `concurrency` clients; the first `warmup` are sent but not returned.

    The clients' own garbage collector is off during a turn: a collection here would pause every
    request in flight and be counted against whichever app happens to be measured (a turn's
    garbage is small and freed when the turn ends)."""
    gc.collect()
    gc.disable()
    try:
        return asyncio.run(_load(url, signing_secret, bodies, concurrency, warmup))
    finally:
        gc.enable()


async def _load(
    url: str, signing_secret: str, bodies: list[bytes], concurrency: int, warmup: int
) -> list[Sample]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm-up at the same concurrency opens the keep-alive connections the run then uses.
        await _clients(session, url, signing_secret, bodies[:warmup], concurrency)
        return await _clients(session, url, signing_secret, bodies[warmup:], concurrency)


async def _clients(
    session: aiohttp.ClientSession,
    url: str,
    signing_secret: str,
    bodies: list[bytes],
    concurrency: int,
) -> list[Sample]:
    """Closed loop: each client sends its next request as soon as its last one is answered."""
    queue = iter(bodies)
    samples: list[Sample] = []

    async def client() -> None:
        for body in queue:  # a shared iterator: each body is taken by exactly one client
            samples.append(await _post(session, url, signing_secret, body))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return samples


async def _post(
    session: aiohttp.ClientSession, url: str, signing_secret: str, body: bytes
) -> Sample:
    headers = signed_headers(signing_secret=signing_secret, timestamp=int(time.time()), body=body)
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return Sample(time.perf_counter() - started, response.status)
    except (aiohttp.ClientError, TimeoutError) as error:
        return Sample(time.perf_counter() - started, 0, f"{type(error).__name__}: {error}")
