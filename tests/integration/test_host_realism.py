"""The fleet's hosts bite where real ones do: sudo is real and root's 0600 files stay root's,
package repositories hold one minor each, kubeadm refuses what kubeadm refuses, and a kubelet
restart takes its node NotReady for a while."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from testbed.apiserver import FakeApiServer, NodeSpec
from testbed.daemons import free_port
from testbed.fleet import Fleet
from testbed.fleet.sshd import can_use_mount_namespaces
from testbed.up import Testbed

from .fleet_helpers import DEADLINE_SECONDS, Ran, fleet_nodes, openssh

APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"
DNF_REPO = "/etc/yum.repos.d/kubernetes.repo"
NEW_KUBEADM = "sudo -n -- apt-get install -y --allow-change-held-packages kubeadm=1.32.0-*"
TO_V132 = f"sudo -n -- sed -i s/v1.31/v1.32/ {APT_SOURCE}"


@pytest.fixture(autouse=True)
def _mount_namespaces() -> None:
    # Without them a node's /etc would be the machine's own: nothing here may touch it.
    # scripts/test-deps makes sure the machine has them.
    assert can_use_mount_namespaces(), "these tests need root with mount namespaces"


@dataclass
class World:
    apiserver: FakeApiServer
    fleet: Fleet

    async def run(self, node: str, command: str) -> Ran:
        return await openssh(self.fleet, node, command)

    async def ok(self, node: str, command: str) -> Ran:
        ran = await self.run(node, command)
        assert ran.code == 0, f"{command}: {ran.stderr}"
        return ran

    def ready(self, node: str) -> tuple[str, str]:
        """(Ready condition status, kubeletVersion) of the Node, as `kubectl get nodes` shows."""
        found = self.apiserver.objects.get("v1", "nodes", None, node)
        assert found is not None
        ready = next(c for c in found["status"]["conditions"] if c["type"] == "Ready")
        return ready["status"], found["status"]["nodeInfo"]["kubeletVersion"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    apiserver = FakeApiServer(workdir=tmp_path / "apiserver", heartbeat_interval=0.5)
    await apiserver.start()
    fleet = Fleet(tmp_path / "fleet", fleet_nodes(apiserver), apiserver)
    await fleet.start()
    try:
        yield World(apiserver, fleet)
    finally:
        await fleet.stop()
        await apiserver.stop()


async def sftp_read(fleet: Fleet, node: str, path: str) -> bytes:
    target = fleet.nodes[node]
    async with (
        asyncssh.connect(
            target.address,
            target.port,
            username=fleet.user,
            client_keys=[str(fleet.client_key_path)],
            known_hosts=str(fleet.known_hosts_path),
        ) as connection,
        connection.start_sftp_client() as sftp,
        sftp.open(path, "rb") as file,
    ):
        data: bytes = await file.read()
        return data


# --- sudo -------------------------------------------------------------------------------------


async def test_the_login_user_is_not_root_and_sudo_makes_commands_root(world: World) -> None:
    name, uid = (await world.ok("worker-1", "id -un; id -u")).stdout.split()
    assert (name, uid != "0") == (world.fleet.user, True)
    root = await world.ok("worker-1", "sudo -n -- id -u")
    assert root.stdout.strip() == "0"


async def test_a_root_0600_file_cannot_be_read_by_the_login_user_over_sftp(world: World) -> None:
    await world.ok(
        "cp-1",
        "sudo -n -- mkdir -p /var/lib/kubegate/etcd && "
        "sudo -n -- sh -c 'umask 077; echo snapshot > /var/lib/kubegate/etcd/snap.db'",
    )
    with pytest.raises(asyncssh.SFTPPermissionDenied):
        await sftp_read(world.fleet, "cp-1", "/var/lib/kubegate/etcd/snap.db")
    with pytest.raises(asyncssh.SFTPPermissionDenied):
        await sftp_read(world.fleet, "cp-1", "/etc/kubernetes/admin.conf")
    # What root wrote is there: sudo reads it.
    assert (await world.ok("cp-1", "sudo -n -- cat /var/lib/kubegate/etcd/snap.db")).stdout == (
        "snapshot\n"
    )
    assert await sftp_read(world.fleet, "cp-1", "/etc/kubernetes/pki/ca.crt")  # 0644 stays open


async def test_node_commands_without_sudo_fail_as_on_a_real_host(world: World) -> None:
    apt = await world.run("worker-1", "apt-get install -y kubelet=1.31.3-*")
    assert apt.code == 100 and "are you root?" in apt.stderr
    restart = await world.run("worker-1", "systemctl restart kubelet")
    assert restart.code != 0 and "Access denied" in restart.stderr
    apply = await world.run("cp-1", "kubeadm upgrade apply v1.31.3 -y")
    assert apply.code == 1
    assert "[ERROR IsPrivilegedUser]: user is not running as root" in apply.stderr
    assert world.fleet.node_state("worker-1")["packages"]["kubelet"] == "1.31.2-1.1"


# --- packages ----------------------------------------------------------------------------------


async def test_apt_installs_the_next_minor_only_after_the_source_switch_and_an_update(
    world: World,
) -> None:
    source = (await world.ok("worker-1", f"cat {APT_SOURCE}")).stdout
    assert source == (
        "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
        "https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n"
    )
    refused = await world.run("worker-1", NEW_KUBEADM)
    assert refused.code == 100
    assert "E: Version '1.32.0-*' for 'kubeadm' was not found" in refused.stderr
    stale = await world.run("worker-1", f"{TO_V132} && {NEW_KUBEADM}")
    assert stale.code == 100, "apt installs from its cached lists until apt-get update"
    updated = await world.ok("worker-1", f"sudo -n -- apt-get update && {NEW_KUBEADM}")
    assert "https://pkgs.k8s.io/core:/stable:/v1.32/deb/" in updated.stdout
    assert (await world.ok("worker-1", "kubeadm version -o short")).stdout.strip() == "v1.32.0"
    held = (await world.ok("worker-1", "apt-mark showhold")).stdout.split()
    assert held == ["kubeadm", "kubectl", "kubelet"], "held packages stay held"
    # The v1.31 lists are gone: a v1.31 patch is no longer offered.
    old = await world.run("worker-1", "sudo -n -- apt-get install -y kubectl=1.31.3-*")
    assert "E: Version '1.31.3-*' for 'kubectl' was not found" in old.stderr


async def test_a_minor_repository_offers_only_its_published_patches(world: World) -> None:
    unhold = "sudo -n -- apt-mark unhold kubelet"
    ok = await world.ok("worker-2", f"{unhold} && sudo -n -- apt-get install -y kubelet=1.31.5-*")
    assert "Setting up kubelet (1.31.5-1.1)" in ok.stdout
    missing = await world.run("worker-2", "sudo -n -- apt-get install -y kubelet=1.31.9-*")
    assert "E: Version '1.31.9-*' for 'kubelet' was not found" in missing.stderr


async def test_dnf_reads_the_repo_file_on_each_run_and_keeps_the_exclude(world: World) -> None:
    install = "sudo -n -- dnf install -y kubeadm-1.32.0"
    lifted = install + " --disableexcludes=kubernetes"
    refused = await world.run("worker-3", lifted)
    assert refused.code == 1
    assert "Error: Unable to find a match: kubeadm-1.32.0" in refused.stderr
    switch = f"sudo -n -- sed -i s/v1.31/v1.32/g {DNF_REPO}"
    excluded = await world.run("worker-3", f"{switch} && {install}")
    assert excluded.code == 1, "exclude=kubelet kubeadm kubectl still applies"
    await world.ok("worker-3", lifted)
    assert (await world.ok("worker-3", "kubeadm version -o short")).stdout.strip() == "v1.32.0"


# --- kubeadm -----------------------------------------------------------------------------------


async def test_kubeadm_refuses_a_skipped_minor_and_a_target_newer_than_itself(
    world: World,
) -> None:
    skip = await world.run("cp-1", "sudo -n -- kubeadm upgrade apply v1.33.0 -y")
    assert skip.code == 1
    assert (
        "[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:"
        in skip.stderr
    )
    assert (
        '- Specified version to upgrade to "v1.33.0" is too high; kubeadm can upgrade only 1 '
        "minor version at a time" in skip.stderr
    )
    assert "is at least one minor release higher than the kubeadm minor release (33 > 31)" in (
        skip.stderr
    )
    patch = await world.run("cp-1", "sudo -n -- kubeadm upgrade apply v1.31.3 -y")
    assert patch.code == 1
    assert (
        'Specified version to upgrade to "v1.31.3" is higher than the kubeadm version "v1.31.2"'
        in patch.stderr
    )
    assert world.apiserver.version == "v1.31.2"


async def test_upgrade_node_waits_for_the_first_control_plane(world: World) -> None:
    switch = f"{TO_V132} && sudo -n -- apt-get update && {NEW_KUBEADM}"
    await world.ok("worker-1", switch)
    early = await world.run("worker-1", "sudo -n -- kubeadm upgrade node")
    assert early.code == 1
    assert 'kubeadm-config ConfigMap ("v1.31.2") is older than this kubeadm' in early.stderr
    await world.ok("cp-1", switch)
    applied = await world.ok("cp-1", "sudo -n -- kubeadm upgrade apply v1.32.0 -y")
    assert 'SUCCESS! Your cluster was upgraded to "v1.32.0"' in applied.stdout
    assert world.apiserver.version == "v1.32.0"
    later = await world.ok("worker-1", "sudo -n -- kubeadm upgrade node")
    assert "The configuration for this node was successfully updated" in later.stdout


async def test_a_second_control_plane_waits_for_the_first(tmp_path: Path) -> None:
    specs = [NodeSpec("cp-1", "control-plane"), NodeSpec("cp-2", "control-plane")]
    apiserver = FakeApiServer(workdir=tmp_path / "apiserver", nodes=specs)
    await apiserver.start()
    fleet = Fleet(tmp_path / "fleet", fleet_nodes(apiserver), apiserver)
    await fleet.start()
    try:
        world = World(apiserver, fleet)
        switch = f"{TO_V132} && sudo -n -- apt-get update && {NEW_KUBEADM}"
        await world.ok("cp-2", switch)
        early = await world.run("cp-2", "sudo -n -- kubeadm upgrade node")
        assert early.code == 1 and "is older than this kubeadm" in early.stderr
        await world.ok("cp-1", f"{switch} && sudo -n -- kubeadm upgrade apply v1.32.0 -y")
        later = await world.ok("cp-2", "sudo -n -- kubeadm upgrade node")
        assert "Upgrading the local control plane to v1.32.0" in later.stdout
    finally:
        await fleet.stop()
        await apiserver.stop()


async def restarted_and_serving(testbed: Testbed) -> None:
    """Until the only API server, restarted by kubeadm's new manifest, serves again: kubeadm
    waits for the component the same way before it goes on."""
    apiserver = testbed.apiserver
    deadline = time.monotonic() + DEADLINE_SECONDS
    while apiserver.stats()["max_apiservers_down"] < 1 or not apiserver.first.serving:
        assert time.monotonic() < deadline, "the API server never came back after its restart"
        await asyncio.sleep(0.05)


async def test_upgrade_apply_refuses_while_etcd_is_unhealthy(full_testbed: Testbed) -> None:
    fleet = full_testbed.fleet
    kubeadm = "sudo -n -- apt-get install -y --allow-change-held-packages kubeadm=1.31.4-*"
    apply = "sudo -n -- kubeadm upgrade apply"
    healthy = await openssh(fleet, "cp-1", f"{kubeadm} && {apply} v1.31.3 -y")
    assert healthy.code == 0, healthy.stderr
    await restarted_and_serving(full_testbed)
    # Every member must answer: a member that is down stops the upgrade, named.
    config_path = fleet.nodes["cp-1"].state_dir / "config.json"
    config = json.loads(config_path.read_text())
    dead = f"https://127.0.0.1:{free_port()}"
    config_path.write_text(
        json.dumps({**config, "etcd_endpoints": [config["etcd_endpoint"], dead]})
    )
    member_down = await openssh(fleet, "cp-1", f"{apply} v1.31.4 -y")
    assert member_down.code == 1
    assert f"etcd cluster is not healthy: {dead} is unhealthy" in member_down.stderr
    # The node's own member down: kubeadm cannot even list the members.
    config_path.write_text(json.dumps({**config, "etcd_endpoint": dead}))
    local_down = await openssh(fleet, "cp-1", f"{apply} v1.31.4 -y")
    assert local_down.code == 1
    assert "etcd cluster is not healthy" in local_down.stderr
    assert full_testbed.apiserver.version == "v1.31.3", "nothing changed"


# --- kubelet restart ---------------------------------------------------------------------------


async def test_a_kubelet_restart_is_not_ready_for_a_while_then_ready_with_its_version(
    world: World,
) -> None:
    world.apiserver.kubelets.start_delay = 1.5
    install = (
        "sudo -n -- apt-mark unhold kubelet && "
        "sudo -n -- apt-get install -y kubelet=1.31.3-* && sudo -n -- apt-mark hold kubelet"
    )
    await world.ok("worker-2", install)
    assert world.ready("worker-2") == ("True", "v1.31.2"), "a new package alone changes nothing"
    started = time.monotonic()
    await world.ok("worker-2", "sudo -n -- systemctl daemon-reload")
    await world.ok("worker-2", "sudo -n -- systemctl restart kubelet")
    assert world.ready("worker-2") == ("False", "v1.31.3")
    deadline = started + DEADLINE_SECONDS
    while world.ready("worker-2")[0] != "True":
        assert time.monotonic() < deadline, "the kubelet never turned Ready"
        await asyncio.sleep(0.05)
    assert time.monotonic() - started >= 1.4
    assert world.ready("worker-2") == ("True", "v1.31.3")
    assert world.ready("worker-1") == ("True", "v1.31.2")
