"""Shared fixtures: a running testbed (fake apiserver + Slack emulator, optionally its machines)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from testbed.up import Testbed, start_testbed


@contextlib.asynccontextmanager
async def running_testbed(directory: Path, **options: Any) -> AsyncIterator[Testbed]:
    # A short heartbeat proves kubegate never guards on a node's resourceVersion.
    world = await start_testbed(directory, heartbeat_interval=0.5, **options)
    try:
        yield world
    finally:
        await world.stop()


@pytest.fixture
async def testbed(tmp_path: Path) -> AsyncIterator[Testbed]:
    async with running_testbed(tmp_path / "testbed", fleet=False) as world:
        yield world


@pytest.fixture
async def full_testbed(tmp_path: Path) -> AsyncIterator[Testbed]:
    """The testbed with its machines: an sshd per node, Vault, a real etcd and Alertmanager."""
    async with running_testbed(tmp_path / "testbed", spare=1) as world:
        yield world


@pytest.fixture
async def big_testbed(tmp_path: Path) -> AsyncIterator[Testbed]:
    """One control plane and eight workers, each with its sshd: for cluster-wide upgrades."""
    async with running_testbed(tmp_path / "testbed", workers=8) as world:
        yield world


@pytest.fixture
async def ha_testbed(tmp_path: Path) -> AsyncIterator[Testbed]:
    """Three control planes (an API server and a real etcd member each) behind the load
    balancer, and two workers; an API server serves again 1 s after its manifest is back."""
    async with running_testbed(
        tmp_path / "testbed", control_planes=3, workers=2, apiserver_startup=1.0
    ) as world:
        yield world
