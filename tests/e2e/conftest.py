"""kubegate served in-process on the testbed, reached only through signed Slack requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import serve
from bot.config import Settings
from testbed.up import Testbed, alerts_url


@dataclass
class Served:
    port: int
    db: Path
    settings: Settings


def settings_for(testbed: Testbed, db: Path) -> Settings:
    return Settings.model_validate(
        {"KUBEGATE_CONFIG": str(testbed.config_path), "KUBEGATE_DB": str(db), "KUBEGATE_PORT": 0}
    )


@pytest.fixture
def config_changes() -> dict[str, Any]:
    """Override in a test module (or parametrize) to serve kubegate with a changed config."""
    return {}


@pytest.fixture
async def kubegate(
    testbed: Testbed, tmp_path: Path, config_changes: dict[str, Any]
) -> AsyncIterator[Served]:
    async with serving(testbed, tmp_path, config_changes) as served:
        yield served


@pytest.fixture
async def kubegate_on_machines(full_testbed: Testbed, tmp_path: Path) -> AsyncIterator[Served]:
    """kubegate on the testbed with SSH nodes, Vault and etcd."""
    async with serving(full_testbed, tmp_path, {}) as served:
        yield served


@pytest.fixture
async def kubegate_on_big_testbed(big_testbed: Testbed, tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(big_testbed, tmp_path, {}) as served:
        yield served


@contextlib.asynccontextmanager
async def serving(
    testbed: Testbed, tmp_path: Path, config_changes: dict[str, Any]
) -> AsyncIterator[Served]:
    if config_changes:
        config = yaml.safe_load(testbed.config_path.read_text())
        testbed.config_path.write_text(yaml.safe_dump({**config, **config_changes}))
    settings = settings_for(testbed, tmp_path / "kubegate.db")
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, ready=port.set_result, stop=stop))
    done, _ = await asyncio.wait([port, task], timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what went wrong at start-up
    testbed.slack.app_url = f"http://127.0.0.1:{port.result()}/slack/events"
    if testbed.world is not None:
        await testbed.world.alertmanager.set_webhook(alerts_url(testbed.slack.app_url))
    try:
        yield Served(port=port.result(), db=settings.db, settings=settings)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
