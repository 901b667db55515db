"""Shared fixtures: a running testbed (fake apiserver + Slack emulator) and kubegate on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from testbed.up import Testbed, start_testbed


@pytest.fixture
async def testbed(tmp_path: Path) -> AsyncIterator[Testbed]:
    # A short heartbeat proves kubegate never guards on a node's resourceVersion.
    world = await start_testbed(tmp_path / "testbed", heartbeat_interval=0.5, fleet=False)
    try:
        yield world
    finally:
        await world.stop()


@pytest.fixture
async def full_testbed(tmp_path: Path) -> AsyncIterator[Testbed]:
    """The testbed with its machines: an sshd per node, Vault and a real etcd."""
    world = await start_testbed(tmp_path / "testbed", heartbeat_interval=0.5, spare=1)
    try:
        yield world
    finally:
        await world.stop()


@pytest.fixture
async def big_testbed(tmp_path: Path) -> AsyncIterator[Testbed]:
    """One control plane and eight workers, each with its sshd: for cluster-wide upgrades."""
    world = await start_testbed(tmp_path / "testbed", workers=8, heartbeat_interval=0.5)
    try:
        yield world
    finally:
        await world.stop()
