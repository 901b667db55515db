"""The testbed's `kubeadm join --control-plane` refuses as kubeadm does: without a stable
controlPlaneEndpoint, without the shared certificates, with a certificate key that does not
open the kubeadm-certs Secret; nothing of the control plane is added then."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from testbed.up import Testbed
from tests.conftest import running_testbed
from tests.integration.fleet_helpers import openssh


@pytest.fixture
async def behind_a_balancer(tmp_path: Path) -> AsyncIterator[Testbed]:
    async with running_testbed(
        tmp_path / "testbed", control_planes=1, workers=0, spare=1, load_balancer=True
    ) as testbed:
        yield testbed


@pytest.fixture
async def without_a_balancer(tmp_path: Path) -> AsyncIterator[Testbed]:
    async with running_testbed(tmp_path / "testbed", control_planes=1, workers=0, spare=1) as tb:
        yield tb


async def join_command(testbed: Testbed) -> str:
    created = await openssh(testbed.fleet, "cp-1", "sudo kubeadm token create --print-join-command")
    assert created.code == 0, created.stderr
    return created.stdout.strip()


async def join_as_control_plane(testbed: Testbed, extra: str = "") -> str:
    command = await join_command(testbed)
    joined = await openssh(
        testbed.fleet,
        "spare-1",
        f"sudo {command} --control-plane {extra} --ignore-preflight-errors=all",
    )
    assert joined.code != 0, "the join went through"
    return joined.stderr


async def nothing_was_added(testbed: Testbed) -> None:
    assert testbed.world is not None
    assert list(await testbed.world.etcd.healthy_members()) == ["cp-1"]
    assert list(testbed.apiserver.endpoints) == ["cp-1"]


async def test_a_cluster_without_a_control_plane_endpoint_takes_no_second_control_plane(
    without_a_balancer: Testbed,
) -> None:
    said = await join_as_control_plane(without_a_balancer)
    assert "doesn't have a stable controlPlaneEndpoint address" in said
    await nothing_was_added(without_a_balancer)


async def test_a_control_plane_join_without_the_shared_certificates_is_refused(
    behind_a_balancer: Testbed,
) -> None:
    said = await join_as_control_plane(behind_a_balancer)
    assert "one or more conditions for hosting a new control plane instance" in said
    assert "/etc/kubernetes/pki/ca.key" in said
    await nothing_was_added(behind_a_balancer)


async def test_a_certificate_key_that_is_not_the_uploaded_one_opens_nothing(
    behind_a_balancer: Testbed,
) -> None:
    testbed = behind_a_balancer
    uploaded = await openssh(
        testbed.fleet, "cp-1", "sudo kubeadm init phase upload-certs --upload-certs"
    )
    assert uploaded.code == 0, uploaded.stderr
    key = uploaded.stdout.split()[-1]
    wrong = ("0" if key[0] != "0" else "1") + key[1:]
    said = await join_as_control_plane(testbed, f"--certificate-key {wrong}")
    assert "error decoding secret data with provided key" in said
    root = testbed.fleet.nodes["spare-1"].state_dir / "root/etc/kubernetes/pki"
    assert not (root / "ca.key").exists(), "a wrong key placed the CA key"
    await nothing_was_added(testbed)
