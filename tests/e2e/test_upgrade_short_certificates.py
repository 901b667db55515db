"""A rolling upgrade longer than its SSH certificate's TTL: kubegate renews the Vault-signed
certificate before it expires, so a node reached later still lets it in."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml

from testbed.up import Testbed
from tests.e2e.conftest import serving
from tests.e2e.slack_steps import kubectl, wait_text
from tests.e2e.test_upgrade_ha import approved

TTL_S = 30


def first_call(testbed: Testbed, node: str, argv: list[str]) -> float | None:
    return next((c.time for c in testbed.fleet.calls(node) if c.argv[: len(argv)] == argv), None)


async def test_a_rolling_upgrade_longer_than_the_certificate_ttl_finishes(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    testbed = full_testbed
    config = yaml.safe_load(testbed.config_path.read_text())
    ssh = config["clusters"][0]["inventory"]["ssh"]
    ssh.update(sign_with_vault=True, certificate_ttl=f"{TTL_S}s")
    # Only a certificate from Vault's SSH CA logs in now: the plain key is not authorized.
    (testbed.fleet.public_dir / "authorized_keys").write_text("")
    # worker-1's kubeadm hangs until its certificate's TTL has passed: a node longer than it.
    testbed.fleet.hang("worker-1", "kubeadm upgrade node")
    async with serving(testbed, tmp_path, config):
        started = time.time()
        ts = await approved(testbed, "upgrade cluster --to v1.31.3 --max-unavailable 1")
        while first_call(testbed, "worker-1", ["kubeadm", "upgrade", "node"]) is None:
            await asyncio.sleep(0.1)
        # The wait is the point: the first certificate must have run out.
        await asyncio.sleep(max(0.0, started + TTL_S + 2 - time.time()))
        testbed.fleet.clear_faults("worker-1")
        await wait_text(testbed, ts, "SUCCEEDED", timeout=240)
    reached = first_call(testbed, "worker-3", ["kubeadm"])
    assert reached is not None and reached > started + TTL_S, "worker-3 was reached later"
    line = await asyncio.to_thread(kubectl, testbed, "get", "nodes", "--no-headers")
    assert line.count("v1.31.3") == 4 and "SchedulingDisabled" not in line, line
