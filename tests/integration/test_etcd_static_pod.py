"""A kubeadm control plane as an operator meets it: no etcdctl on the host, etcd's tools inside
the etcd container (`crictl exec`), and etcd 3.6's etcdctl without `snapshot status`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.up import Testbed
from tests.conftest import running_testbed

from .fleet_helpers import Ran, openssh

CERTS = (
    "--cacert=/etc/kubernetes/pki/etcd/ca.crt "
    "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
    "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key"
)


async def on(testbed: Testbed, node: str, command: str) -> Ran:
    assert testbed.world is not None
    return await openssh(testbed.world.fleet, node, command)


async def etcd_container(testbed: Testbed, node: str) -> str:
    listed = await on(testbed, node, "sudo -n crictl ps --name '^etcd$' -q")
    assert listed.code == 0, listed.stderr
    [container] = listed.stdout.split()
    return container


async def test_a_control_plane_has_no_etcdctl_but_its_etcd_container_answers(
    ha_testbed: Testbed,
) -> None:
    missing = await on(ha_testbed, "cp-2", "etcdctl version")
    assert missing.code == 127
    table = await on(ha_testbed, "cp-2", "sudo -n crictl ps --name etcd")
    assert "Running" in table.stdout and "etcd-cp-2" in table.stdout
    container = await etcd_container(ha_testbed, "cp-2")
    members = await on(
        ha_testbed,
        "cp-2",
        f"sudo -n crictl exec {container} etcdctl --endpoints=https://127.0.0.1:2379 {CERTS} "
        "member list -w json",
    )
    assert members.code == 0, members.stderr
    names = sorted(m["name"] for m in json.loads(members.stdout)["members"])
    assert names == ["cp-1", "cp-2", "cp-3"]


async def test_crictl_needs_root_as_containerd_s_socket_is_root_s(ha_testbed: Testbed) -> None:
    denied = await on(ha_testbed, "cp-1", "crictl ps")
    assert denied.code != 0 and "permission denied" in denied.stderr


async def snapshot_in_container(testbed: Testbed, node: str) -> tuple[str, str]:
    container = await etcd_container(testbed, node)
    saved = await on(
        testbed,
        node,
        f"sudo -n crictl exec {container} etcdctl --endpoints=https://127.0.0.1:2379 {CERTS} "
        "snapshot save /var/lib/etcd/probe.db",
    )
    assert saved.code == 0, saved.stderr
    return container, "/var/lib/etcd/probe.db"


async def test_etcd_3_6_has_no_etcdctl_snapshot_status_but_etcdutl_reads_the_snapshot(
    ha_testbed: Testbed,
) -> None:
    container, snapshot = await snapshot_in_container(ha_testbed, "cp-1")
    gone = await on(
        ha_testbed, "cp-1", f"sudo -n crictl exec {container} etcdctl snapshot status {snapshot}"
    )
    assert gone.code != 0 and 'unknown command "status"' in gone.stderr
    status = await on(
        ha_testbed,
        "cp-1",
        f"sudo -n crictl exec {container} etcdutl snapshot status {snapshot} -w json",
    )
    assert status.code == 0, status.stderr
    assert json.loads(status.stdout)["totalKey"] >= 3
    # Written by root in etcd's data directory: the login user cannot read it.
    unreadable = await on(ha_testbed, "cp-1", f"cat {snapshot} > /dev/null")
    assert unreadable.code != 0


async def test_etcd_3_5_still_answers_etcdctl_snapshot_status(tmp_path: Path) -> None:
    async with running_testbed(tmp_path / "testbed", workers=0, etcd_version="3.5") as testbed:
        container, snapshot = await snapshot_in_container(testbed, "cp-1")
        status = await on(
            testbed, "cp-1", f"sudo -n crictl exec {container} etcdctl snapshot status {snapshot}"
        )
        assert status.code == 0, status.stderr


@pytest.mark.parametrize("path", ["/var/lib/kubegate/probe.db", "/tmp/probe.db"])
async def test_the_etcd_container_sees_only_its_mounts(ha_testbed: Testbed, path: str) -> None:
    container = await etcd_container(ha_testbed, "cp-1")
    outside = await on(
        ha_testbed,
        "cp-1",
        f"sudo -n crictl exec {container} etcdctl --endpoints=https://127.0.0.1:2379 {CERTS} "
        f"snapshot save {path}",
    )
    assert outside.code != 0 and "no such file or directory" in outside.stderr
