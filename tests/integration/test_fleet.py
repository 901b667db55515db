"""The SSH node fleet as the real OpenSSH client and asyncssh see it: shims that record calls and
change the node (and the fake apiserver), pinned host keys, faults, certificates, scale."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from testbed.apiserver import FakeApiServer, NodeSpec
from testbed.fleet import Fleet

from .fleet_helpers import DEADLINE_SECONDS, fleet_nodes, openssh


@dataclass
class World:
    apiserver: FakeApiServer
    fleet: Fleet


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    apiserver = FakeApiServer(workdir=tmp_path / "apiserver", heartbeat_interval=0.5)
    await apiserver.start()
    # worker-9 is a bare host with an sshd but no Node object yet: the one to provision.
    fleet = Fleet(
        tmp_path / "fleet",
        [*fleet_nodes(apiserver), ("worker-9", "127.0.10.9", "worker")],
        apiserver,
    )
    await fleet.start()
    try:
        yield World(apiserver, fleet)
    finally:
        await fleet.stop()
        await apiserver.stop()


async def connect(fleet: Fleet, node: str, **options: object) -> asyncssh.SSHClientConnection:
    target = fleet.nodes[node]
    settings: dict[str, object] = {
        "username": fleet.user,
        "client_keys": [str(fleet.client_key_path)],
        "known_hosts": str(fleet.known_hosts_path),
        **options,
    }
    return await asyncssh.connect(target.address, target.port, **settings)  # type: ignore[arg-type]


def kubelet_version(apiserver: FakeApiServer, node: str) -> str:
    found = apiserver.objects.get("v1", "nodes", None, node)
    assert found is not None
    return str(found["status"]["nodeInfo"]["kubeletVersion"])


async def test_openssh_runs_kubeadm_version_and_the_call_is_logged(world: World) -> None:
    ran = await openssh(world.fleet, "worker-1", "kubeadm version -o short")
    assert (ran.code, ran.stdout.strip()) == (0, "v1.31.2"), ran.stderr
    assert [c.argv for c in world.fleet.calls("worker-1")] == [
        ["kubeadm", "version", "-o", "short"]
    ]
    assert world.fleet.calls("worker-2") == []


async def test_asyncssh_runs_a_command_with_the_node_environment(world: World) -> None:
    async with await connect(world.fleet, "cp-1") as connection:
        result = await connection.run('kubelet --version; echo "$TESTBED_NODE"', check=True)
    assert result.stdout == "Kubernetes v1.31.2\ncp-1\n"
    assert [c.argv for c in world.fleet.calls("cp-1")] == [["kubelet", "--version"]]


async def test_kubelet_restart_after_install_changes_kubelet_version(world: World) -> None:
    steps = (
        "sudo apt-mark unhold kubelet kubectl && "
        "sudo apt-get install -y kubelet=1.31.3-* kubectl=1.31.3-* && "
        "sudo apt-mark hold kubelet kubectl && "
        "sudo systemctl daemon-reload && sudo systemctl restart kubelet"
    )
    ran = await openssh(world.fleet, "worker-3", steps)
    assert ran.code == 0, ran.stderr
    assert kubelet_version(world.apiserver, "worker-3") == "v1.31.3"
    assert kubelet_version(world.apiserver, "worker-2") == "v1.31.2"
    assert world.fleet.node_state("worker-3")["packages"]["kubelet"] == "1.31.3-1.1"


async def test_installing_a_held_package_is_refused_as_apt_does(world: World) -> None:
    ran = await openssh(world.fleet, "worker-1", "sudo apt-get install -y kubelet=1.31.3-*")
    assert ran.code == 100
    assert "Held packages were changed" in ran.stderr


async def test_wrong_host_key_is_refused_by_both_clients(world: World, tmp_path: Path) -> None:
    fleet = world.fleet
    impostor = fleet.nodes["worker-2"]  # pin worker-2's key for worker-1's address and port
    wrong = tmp_path / "known_hosts"
    target = fleet.nodes["worker-1"]
    wrong.write_text(f"[{target.address}]:{target.port} {impostor.host_public_key}\n")
    ran = await openssh(fleet, "worker-1", "kubeadm version", known_hosts=wrong)
    assert ran.code == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in ran.stderr
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await connect(fleet, "worker-1", known_hosts=str(wrong))
    assert fleet.calls("worker-1") == []


async def test_host_key_fingerprint_is_what_ssh_keygen_prints(world: World) -> None:
    node = world.fleet.nodes["cp-1"]
    known_hosts = str(world.fleet.known_hosts_path)
    scanned = subprocess.run(
        ["ssh-keygen", "-l", "-F", f"[{node.address}]:{node.port}", "-f", known_hosts],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert node.host_key_fingerprint in scanned


async def test_killed_sshd_refuses_connections_and_comes_back(world: World) -> None:
    fleet = world.fleet
    async with await connect(fleet, "worker-2") as connection:
        running = await connection.create_process("sleep 30")
        await fleet.kill_sshd("worker-2")
        await asyncio.wait_for(running.wait_closed(), DEADLINE_SECONDS)
    with pytest.raises(OSError):
        await connect(fleet, "worker-2")
    await fleet.restart_sshd("worker-2")
    ran = await openssh(fleet, "worker-2", "true")
    assert ran.code == 0, ran.stderr


async def test_fault_makes_a_shim_fail_with_the_given_stderr(world: World) -> None:
    fleet = world.fleet
    fleet.fail("worker-1", "kubeadm upgrade node", exit_code=1, stderr="etcd unreachable", times=1)
    failed = await openssh(fleet, "worker-1", "sudo kubeadm upgrade node")
    assert (failed.code, failed.stderr.strip()) == (1, "etcd unreachable")
    assert (await openssh(fleet, "worker-1", "kubeadm version -o short")).code == 0
    again = await openssh(fleet, "worker-1", "sudo kubeadm upgrade node")
    assert again.code == 0, again.stderr
    assert [c.argv[:3] for c in fleet.calls("worker-1")].count(["kubeadm", "upgrade", "node"]) == 2


async def test_hung_shim_returns_once_the_fault_is_cleared(world: World) -> None:
    fleet = world.fleet
    fleet.hang("worker-1", "systemctl")
    async with await connect(fleet, "worker-1") as connection:
        process = await connection.create_process("sudo -n -- systemctl restart kubelet")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), 0.5)
        assert ["systemctl", "restart", "kubelet"] in [c.argv for c in fleet.calls("worker-1")]
        fleet.clear_faults("worker-1")
        result = await asyncio.wait_for(process.wait(), DEADLINE_SECONDS)
    assert result.exit_status == 0


async def test_user_certificate_signed_by_fleet_ca_logs_in(world: World, tmp_path: Path) -> None:
    fleet = world.fleet
    key = tmp_path / "operator"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    signing = ["ssh-keygen", "-q", "-s", str(fleet.user_ca_key_path), "-I", "operator"]
    subprocess.run([*signing, "-n", fleet.user, "-V", "+5m", f"{key}.pub"], check=True)
    ran = await openssh(fleet, "cp-1", "echo in", key=key)  # ssh picks up operator-cert.pub
    assert (ran.code, ran.stdout) == (0, "in\n"), ran.stderr
    certificate = asyncssh.read_certificate(f"{key}-cert.pub")
    async with await connect(
        fleet, "cp-1", client_keys=[(asyncssh.read_private_key(str(key)), certificate)]
    ) as connection:
        assert (await connection.run("echo in")).stdout == "in\n"
    # A key the fleet neither authorizes nor certified is refused.
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(fleet, "cp-1", client_keys=[stranger])


async def test_provisioned_node_joins_with_a_fresh_token(world: World) -> None:
    fleet = world.fleet
    join = await openssh(fleet, "cp-1", "sudo kubeadm token create --print-join-command --ttl 1h")
    assert join.code == 0 and join.stdout.startswith("kubeadm join "), join.stderr
    # A bare host has no Kubernetes package source: apt cannot find the packages.
    missing = await openssh(fleet, "worker-9", "sudo apt-get install -y kubelet=1.31.2-*")
    assert missing.code == 100 and "Unable to locate package kubelet" in missing.stderr
    source = (
        "curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.31/deb/Release.key | "
        "sudo gpg --batch --yes --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg && "
        "echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
        "https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /' | "
        "sudo tee /etc/apt/sources.list.d/kubernetes.list && sudo apt-get update && "
        "sudo apt-get install -y kubelet=1.31.2-* kubeadm=1.31.2-*"
    )
    installed = await openssh(fleet, "worker-9", source)
    assert installed.code == 0, installed.stderr
    refused = await openssh(fleet, "worker-9", "sudo " + join.stdout)
    assert refused.code == 1 and "[ERROR Swap]" in refused.stderr
    prepare = (
        "sudo swapoff -a && sudo modprobe overlay && sudo modprobe br_netfilter && "
        "sudo sysctl -w net.bridge.bridge-nf-call-iptables=1 net.ipv4.ip_forward=1 && "
        "sudo systemctl enable --now kubelet && "
    )
    cgroupfs = await openssh(fleet, "worker-9", prepare + "sudo " + join.stdout)
    assert cgroupfs.code == 1 and 'container runtime cgroup driver: "cgroupfs"' in cgroupfs.stderr
    systemd = (
        "sudo sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' "
        "/etc/containerd/config.toml && sudo systemctl restart containerd && sudo "
    )
    joined = await openssh(
        fleet, "worker-9", systemd + join.stdout.strip() + " --node-name worker-9"
    )
    assert joined.code == 0, joined.stderr
    assert "This node has joined the cluster" in joined.stdout
    assert kubelet_version(world.apiserver, "worker-9") == "v1.31.2"
    token = join.stdout.split()[4]
    again = await openssh(fleet, "cp-1", "sudo kubeadm token list")
    assert again.code == 0 and token in again.stdout
    token_id = token.split(".")[0]
    deleted = await openssh(fleet, "cp-1", f"sudo kubeadm token delete {token_id}")
    assert deleted.code == 0 and f'bootstrap token "{token_id}" deleted' in deleted.stdout
    listed = await openssh(fleet, "cp-1", "sudo kubeadm token list")
    assert token_id not in listed.stdout


async def test_upgrade_apply_moves_the_apiserver_version(world: World) -> None:
    kubeadm = "sudo apt-get install -y --allow-change-held-packages kubeadm=1.31.3-*"
    ran = await openssh(world.fleet, "cp-1", f"{kubeadm} && sudo kubeadm upgrade apply v1.31.3 -y")
    assert ran.code == 0, ran.stderr
    assert 'SUCCESS! Your cluster was upgraded to "v1.31.3"' in ran.stdout
    assert world.apiserver.version == "v1.31.3"
    too_far = await openssh(world.fleet, "cp-1", "sudo kubeadm upgrade apply v1.33.0 --yes")
    assert too_far.code == 1


async def test_cert_expiration_table_and_renewal(world: World) -> None:
    before = await openssh(world.fleet, "cp-1", "sudo kubeadm certs check-expiration")
    assert before.code == 0, before.stderr
    assert "CERTIFICATE                EXPIRES                  RESIDUAL TIME" in before.stdout
    assert "apiserver                  " in before.stdout and " 299d " in before.stdout
    renewed = await openssh(
        world.fleet, "cp-1", "sudo kubeadm certs renew all && sudo kubeadm certs check-expiration"
    )
    assert renewed.code == 0, renewed.stderr
    assert " 299d " not in renewed.stdout and " 364d " in renewed.stdout


async def test_ten_nodes_start_in_a_few_seconds(tmp_path: Path) -> None:
    specs = [NodeSpec(name=f"worker-{i}") for i in range(1, 11)]
    apiserver = FakeApiServer(workdir=tmp_path / "apiserver", nodes=specs)
    await apiserver.start()
    fleet = Fleet(tmp_path / "fleet", fleet_nodes(apiserver), apiserver)
    started = time.monotonic()
    try:
        await fleet.start()
        elapsed = time.monotonic() - started
        results = await asyncio.gather(*(openssh(fleet, name, "true") for name in fleet.nodes))
    finally:
        await fleet.stop()
        await apiserver.stop()
    assert elapsed < 5.0
    assert [r.code for r in results] == [0] * 10
