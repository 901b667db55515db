"""The real etcd with kubeadm-like TLS, and an `etcdctl snapshot save` run over SSH in cp-1's
etcd container that the real `etcdctl snapshot status` accepts."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from testbed.apiserver import FakeApiServer
from testbed.etcd import Etcd
from testbed.fleet import Fleet

from .fleet_helpers import fleet_nodes, openssh

PKI = "/etc/kubernetes/pki/etcd"
SAVE = (  # /var/lib/etcd and the etcd keys are root's on the node, as on a real host
    "c=$(sudo -n -- crictl ps --name '^etcd$' -q) && "
    'sudo -n -- crictl exec "$c" etcdctl --endpoints=https://127.0.0.1:2379 '
    f"--cacert={PKI}/ca.crt --cert={PKI}/healthcheck-client.crt "
    f"--key={PKI}/healthcheck-client.key snapshot save /var/lib/etcd/snap.db"
)


async def etcdctl_status(path: Path) -> dict[str, int]:
    process = await asyncio.create_subprocess_exec(
        "/usr/bin/etcdctl",
        "snapshot",
        "status",
        str(path),
        "-w",
        "json",
        env={**os.environ, "ETCDCTL_API": "3"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    status: dict[str, int] = json.loads(out)
    return status


async def test_snapshot_saved_over_ssh_in_cp1_s_etcd_container_passes_etcdctl_status(
    tmp_path: Path,
) -> None:
    apiserver = FakeApiServer(workdir=tmp_path / "apiserver")
    etcd = Etcd(tmp_path / "etcd")
    await asyncio.gather(apiserver.start(), etcd.start())
    fleet = Fleet(tmp_path / "fleet", fleet_nodes(apiserver), apiserver)
    try:
        await fleet.start()
        fleet.attach_etcd(etcd)
        saved = await openssh(
            fleet, "cp-1", f"{SAVE} && sudo -n -- sha256sum /var/lib/etcd/snap.db"
        )
        assert saved.code == 0, saved.stderr
        snapshot = fleet.nodes["cp-1"].state_dir / "root/var/lib/etcd/snap.db"
        status = await etcdctl_status(snapshot)
        assert status["totalKey"] >= 3
        assert status["revision"] >= 3
        assert any(call.argv[:2] == ["crictl", "exec"] for call in fleet.calls("cp-1"))
    finally:
        await fleet.stop()
        await etcd.stop()
        await apiserver.stop()


async def test_etcd_serves_only_clients_with_a_certificate(tmp_path: Path) -> None:
    etcd = Etcd(tmp_path / "etcd")
    await etcd.start()
    try:
        listed = await etcd.etcdctl("get", "/registry", "--prefix", "--keys-only")
        assert "/registry/namespaces/default" in listed
        process = await asyncio.create_subprocess_exec(
            "/usr/bin/etcdctl",
            f"--endpoints={etcd.client_url}",
            f"--cacert={etcd.ca_path}",
            "--command-timeout=2s",
            "get",
            "x",
            env={**os.environ, "ETCDCTL_API": "3"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await process.communicate()
        assert process.returncode != 0
    finally:
        await etcd.stop()
