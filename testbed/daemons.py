"""What every real daemon the testbed runs needs: a free port to try, and a clean stop."""

from __future__ import annotations

import asyncio
import socket


def free_port(address: str = "127.0.0.1") -> int:
    """A port nobody listens on at `address` right now (the caller retries if it loses a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


async def stop_daemon(process: asyncio.subprocess.Process | None, *, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `grace` seconds."""
    if process is None or process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        process.kill()
        await process.wait()
