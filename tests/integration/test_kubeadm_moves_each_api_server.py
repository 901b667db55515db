"""On the HA testbed, kubeadm upgrades the API server of the node it runs on: `upgrade apply` on
the first control plane, `upgrade node` on each of the others (kubeadm's upgrade procedure)."""

from __future__ import annotations

import asyncio

import pytest

from testbed.fleet.sshd import can_use_mount_namespaces
from testbed.up import Testbed

from .fleet_helpers import openssh
from .test_ha_testbed import apiserver_url, eventually, version_at

APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"
NEW_KUBEADM = (
    f"sudo -n -- sed -i s/v1.31/v1.32/ {APT_SOURCE} && sudo -n -- apt-get update && "
    "sudo -n -- apt-get install -y --allow-change-held-packages kubeadm=1.32.0-*"
)


@pytest.fixture(autouse=True)
def _mount_namespaces() -> None:
    # The nodes' own filesystems and real sudo need them; scripts/test-deps checks for them.
    assert can_use_mount_namespaces(), "these tests need root with mount namespaces"


async def ok(testbed: Testbed, node: str, command: str) -> str:
    ran = await openssh(testbed.fleet, node, command)
    assert ran.code == 0, f"{node}: {command}: {ran.stderr}"
    return ran.stdout


async def serves(testbed: Testbed, node: str, version: str) -> None:
    url = apiserver_url(testbed, node)

    async def at_version() -> bool:
        return await version_at(testbed, url) == version

    await eventually(at_version, f"{node}'s API server to serve {version}")

    # kubeadm itself waits for the kubelet to restart the component and for it to be healthy
    # before it returns (phases/upgrade/staticpods.go); the shim returns once the manifest is
    # written, so the test waits here as kubeadm would before the next control plane.
    async def all_serving() -> bool:
        return testbed.apiserver.stats()["apiservers_down"] == 0 and await at_version()

    for _ in range(3):  # stable across a few looks, not one lucky poll
        await eventually(all_serving, "every API server serving again")
        await asyncio.sleep(0.2)


async def test_apply_moves_the_first_api_server_and_upgrade_node_each_other(
    ha_testbed: Testbed,
) -> None:
    await ok(ha_testbed, "cp-1", f"{NEW_KUBEADM} && sudo -n -- kubeadm upgrade apply v1.32.0 -y")
    await serves(ha_testbed, "cp-1", "v1.32.0")
    assert await version_at(ha_testbed, apiserver_url(ha_testbed, "cp-2")) == "v1.31.2"

    await ok(ha_testbed, "cp-2", f"{NEW_KUBEADM} && sudo -n -- kubeadm upgrade node")
    await serves(ha_testbed, "cp-2", "v1.32.0")
    assert await version_at(ha_testbed, apiserver_url(ha_testbed, "cp-3")) == "v1.31.2"

    await ok(ha_testbed, "cp-3", f"{NEW_KUBEADM} && sudo -n -- kubeadm upgrade node")
    await serves(ha_testbed, "cp-3", "v1.32.0")
    assert ha_testbed.apiserver.stats()["max_apiservers_down"] <= 1
