"""The HA testbed as an operator meets it: three control planes behind a load balancer, the real
kubectl, a real three-member etcd, static-pod manifests that start and stop what they name, and
`python -m testbed fault`."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from testbed.fleet.shims.nodestate import Node
from testbed.fleet.shims.staticpods import upgrade_manifest
from testbed.up import Testbed

from .fleet_helpers import Ran, openssh

KUBECTL = "/usr/bin/kubectl"
ETCDCTL = "/usr/bin/etcdctl"
DEADLINE_SECONDS = 20.0
MANIFESTS = "/etc/kubernetes/manifests"


def description(testbed: Testbed) -> dict[str, Any]:
    described: dict[str, Any] = json.loads((testbed.directory / "testbed.json").read_text())
    return described


def apiserver_url(testbed: Testbed, node: str) -> str:
    planes = description(testbed)["control_planes"]
    url: str = next(plane["apiserver_url"] for plane in planes if plane["name"] == node)
    return url


async def run(*argv: str, home: Path | None = None) -> Ran:
    env = {**os.environ, **({"HOME": str(home)} if home else {})}
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE_SECONDS)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def kubectl(testbed: Testbed, *args: str, server: str | None = None) -> Ran:
    options = ["--kubeconfig", str(testbed.kubeconfig), "--request-timeout", "5s"]
    options += ["--cache-dir", str(testbed.directory / "kube-cache")]
    if server is not None:
        options += ["--server", server]
    return await run(KUBECTL, *options, *args, home=testbed.directory)


async def fault(testbed: Testbed, *args: str) -> Ran:
    return await run(
        sys.executable, "-m", "testbed", "fault", "--dir", str(testbed.directory), *args
    )


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def refuses_connections(url: str) -> bool:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    try:
        _reader, writer = await asyncio.open_connection(host, int(port))
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def version_at(testbed: Testbed, url: str) -> str | None:
    """What GET /version at `url` says, or None when nothing answers there."""
    tls = ssl.create_default_context(cafile=str(testbed.apiserver.ca_path))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/version", ssl=tls) as response,
        ):
            body = await response.json()
    except aiohttp.ClientConnectionError:
        return None
    version: str = body["gitVersion"]
    return version


def stats(testbed: Testbed) -> dict[str, Any]:
    return testbed.apiserver.stats()


async def test_testbed_json_names_each_control_plane_the_load_balancer_and_each_nodes_files(
    ha_testbed: Testbed,
) -> None:
    described = description(ha_testbed)

    planes = described["control_planes"]
    assert [plane["name"] for plane in planes] == ["cp-1", "cp-2", "cp-3"]
    assert len({plane["apiserver_url"] for plane in planes}) == 3
    assert len({plane["etcd_client_url"] for plane in planes}) == 3
    assert described["load_balancer_url"] not in {plane["apiserver_url"] for plane in planes}
    kubeconfig = ha_testbed.kubeconfig.read_text()
    assert described["load_balancer_url"] in kubeconfig
    for name, node in described["ssh"]["nodes"].items():
        assert Path(node["root"], "etc/kubernetes").is_dir(), name
        assert Path(node["call_log"]).exists(), name
    for key in ("kubeconfig", "apiserver_url", "slack_api_url", "vault", "etcd", "alertmanager"):
        assert key in described


async def test_each_control_plane_holds_its_etcd_members_certificates_as_kubeadm_names_them(
    ha_testbed: Testbed,
) -> None:
    nodes = description(ha_testbed)["ssh"]["nodes"]
    for plane in ("cp-1", "cp-2", "cp-3"):
        pki = Path(nodes[plane]["root"], "etc/kubernetes/pki/etcd")
        for stem in ("ca", "server", "peer", "healthcheck-client"):
            assert (pki / f"{stem}.crt").is_file() and (pki / f"{stem}.key").is_file()
        for cert in ("server.crt", "peer.crt"):
            certificate = x509.load_pem_x509_certificate((pki / cert).read_bytes())
            names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            assert plane in names.value.get_values_for_type(x509.DNSName)
            address = ipaddress.ip_address(nodes[plane]["address"])
            assert address in names.value.get_values_for_type(x509.IPAddress)


async def test_a_single_control_plane_testbed_describes_itself_without_a_load_balancer(
    testbed: Testbed,
) -> None:
    described = description(testbed)

    assert described["load_balancer_url"] is None
    assert described["control_planes"] == [
        {"name": "cp-1", "apiserver_url": described["apiserver_url"], "etcd_client_url": None}
    ]
    assert "apiserver-down" in described["faults"]["names"]


def on_node(testbed: Testbed, name: str, monkeypatch: pytest.MonkeyPatch) -> Node:
    """A shim's view of that node, as the kubeadm shim has it."""
    monkeypatch.setenv("TESTBED_NODE", name)
    monkeypatch.setenv("TESTBED_STATE", str(testbed.fleet.nodes[name].state_dir))
    return Node()


async def test_each_control_plane_serves_its_own_version(
    ha_testbed: Testbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `kubeadm upgrade node` does on cp-2: a new image tag in its API server's manifest.
    upgrade_manifest(on_node(ha_testbed, "cp-2", monkeypatch), "kube-apiserver", "v1.32.0")
    cp2 = apiserver_url(ha_testbed, "cp-2")

    async def cp2_upgraded() -> bool:
        return await version_at(ha_testbed, cp2) == "v1.32.0"

    await eventually(cp2_upgraded, "cp-2's API server to come back at v1.32.0")
    assert await version_at(ha_testbed, apiserver_url(ha_testbed, "cp-1")) == "v1.31.2"
    assert await version_at(ha_testbed, apiserver_url(ha_testbed, "cp-3")) == "v1.31.2"

    async def kubectl_sees_it() -> bool:
        # The kubelet may restart the server once more for the same change (the new manifest's
        # write and its mtime seen on two passes): kubectl, like any client, retries.
        direct = await kubectl(ha_testbed, "version", "-o", "json", server=cp2)
        served = json.loads(direct.stdout).get("serverVersion", {}) if direct.code == 0 else {}
        return served.get("gitVersion") == "v1.32.0"

    await eventually(kubectl_sees_it, "kubectl to reach cp-2 at v1.32.0")


async def test_the_only_api_server_goes_down_and_comes_back_on_its_port(testbed: Testbed) -> None:
    url = testbed.apiserver.url

    assert (await fault(testbed, "apiserver-down", "cp-1")).code == 0
    assert await refuses_connections(url)
    no_etcd = await fault(testbed, "etcd-member-down", "cp-1")
    assert (await fault(testbed, "apiserver-up", "cp-1")).code == 0

    async def serving() -> bool:
        return await version_at(testbed, url) == "v1.31.2"

    await eventually(serving, "the API server to serve again at the same address")
    assert no_etcd.code == 2 and "runs no etcd" in no_etcd.stderr
    assert stats(testbed)["max_apiservers_down"] == 1


async def test_kubectl_through_the_load_balancer_answers_while_an_api_server_is_down(
    ha_testbed: Testbed,
) -> None:
    switched = await fault(ha_testbed, "apiserver-down", "cp-1")
    assert switched.code == 0, switched.stderr
    assert await refuses_connections(apiserver_url(ha_testbed, "cp-1"))

    for _ in range(6):  # round robin would pick cp-1 for some of these
        listed = await kubectl(ha_testbed, "get", "nodes", "-o", "name")
        assert listed.code == 0, listed.stderr
        assert "node/cp-1" in listed.stdout.split()

    assert stats(ha_testbed)["max_apiservers_down"] == 1
    assert ha_testbed.control_planes is not None
    await ha_testbed.control_planes.release("cp-1", "apiserver")  # what apiserver-up does
    assert await refuses_connections(apiserver_url(ha_testbed, "cp-1"))  # still starting

    async def serving() -> bool:
        return await version_at(ha_testbed, apiserver_url(ha_testbed, "cp-1")) is not None

    await eventually(serving, "cp-1's API server to serve again")


async def test_moving_the_apiserver_manifest_out_takes_that_api_server_down_until_it_is_back(
    ha_testbed: Testbed,
) -> None:
    cp3 = apiserver_url(ha_testbed, "cp-3")
    out = await openssh(
        ha_testbed.fleet, "cp-3", f"sudo -n -- mv {MANIFESTS}/kube-apiserver.yaml /tmp/"
    )

    assert out.code == 0, out.stderr

    async def down() -> bool:
        return await refuses_connections(cp3)

    await eventually(down, "cp-3's API server to stop")
    assert (await kubectl(ha_testbed, "get", "nodes")).code == 0
    back = await openssh(
        ha_testbed.fleet, "cp-3", f"sudo -n -- mv /tmp/kube-apiserver.yaml {MANIFESTS}/"
    )
    assert back.code == 0, back.stderr

    async def serving() -> bool:
        return await version_at(ha_testbed, cp3) == "v1.31.2"

    await eventually(serving, "cp-3's API server to serve again")
    assert stats(ha_testbed)["max_apiservers_down"] == 1
    assert stats(ha_testbed)["apiservers_down"] == 0


async def etcd_health(testbed: Testbed, node: str) -> Ran:
    """etcdctl endpoint health against one member, with that node's kubeadm certificates."""
    described = description(testbed)
    plane = next(p for p in described["control_planes"] if p["name"] == node)
    pki = Path(described["ssh"]["nodes"][node]["root"], "etc/kubernetes/pki/etcd")
    return await run(
        ETCDCTL,
        f"--endpoints={plane['etcd_client_url']}",
        f"--cacert={pki / 'ca.crt'}",
        f"--cert={pki / 'healthcheck-client.crt'}",
        f"--key={pki / 'healthcheck-client.key'}",
        "--command-timeout=2s",
        "endpoint",
        "health",
    )


async def test_a_member_down_leaves_etcd_with_quorum_and_its_api_server_unhealthy(
    ha_testbed: Testbed,
) -> None:
    switched = await fault(ha_testbed, "etcd-member-down", "cp-2")

    assert switched.code == 0, switched.stderr
    assert (await etcd_health(ha_testbed, "cp-2")).code != 0

    async def others_healthy() -> bool:  # once a new leader is elected, if cp-2 led
        return (await etcd_health(ha_testbed, "cp-1")).code == 0

    await eventually(others_healthy, "cp-1's member to answer health checks")
    # kube-apiserver's /healthz checks its own etcd member, so the load balancer drops it.
    balancer = ha_testbed.load_balancer
    assert balancer is not None

    async def dropped() -> bool:
        return balancer.description()["cp-2"] is False

    await eventually(dropped, "the load balancer to take cp-2 out")
    assert (await kubectl(ha_testbed, "get", "nodes")).code == 0
    assert stats(ha_testbed)["etcd_members_down"] == 1
    assert stats(ha_testbed)["max_etcd_members_down"] == 1
    assert stats(ha_testbed)["etcd_quorum_lost"] == 0
    assert (await fault(ha_testbed, "etcd-member-up", "cp-2")).code == 0

    async def healthy_again() -> bool:
        return (await etcd_health(ha_testbed, "cp-2")).code == 0

    await eventually(healthy_again, "cp-2's etcd member to rejoin")
    assert stats(ha_testbed)["etcd_members_down"] == 0


async def test_moving_etcd_yaml_out_stops_that_member_and_back_starts_it(
    ha_testbed: Testbed,
) -> None:
    out = await openssh(ha_testbed.fleet, "cp-3", f"sudo -n -- mv {MANIFESTS}/etcd.yaml /tmp/")
    assert out.code == 0, out.stderr

    async def stopped() -> bool:
        return (await etcd_health(ha_testbed, "cp-3")).code != 0

    await eventually(stopped, "cp-3's etcd member to stop")
    back = await openssh(ha_testbed.fleet, "cp-3", f"sudo -n -- mv /tmp/etcd.yaml {MANIFESTS}/")
    assert back.code == 0, back.stderr

    async def healthy() -> bool:
        return (await etcd_health(ha_testbed, "cp-3")).code == 0

    await eventually(healthy, "cp-3's etcd member to run again")
    assert stats(ha_testbed)["etcd_quorum_lost"] == 0


async def test_two_members_down_is_a_quorum_loss_that_stops_the_api_until_one_is_back(
    ha_testbed: Testbed,
) -> None:
    assert (await fault(ha_testbed, "etcd-member-down", "cp-2")).code == 0
    assert (await fault(ha_testbed, "etcd-member-down", "cp-3")).code == 0

    async def lost() -> bool:
        return bool(stats(ha_testbed)["etcd_quorum_lost"] == 1)

    await eventually(lost, "the quorum loss to be counted")
    assert (await etcd_health(ha_testbed, "cp-1")).code != 0  # alone, it has no leader
    failing = await kubectl(ha_testbed, "get", "nodes")
    assert failing.code != 0
    assert "etcdserver: request timed out" in failing.stderr

    assert (await fault(ha_testbed, "etcd-member-up", "cp-2")).code == 0

    async def answering() -> bool:
        return (await kubectl(ha_testbed, "get", "nodes")).code == 0

    await eventually(answering, "the API to answer once two members run again")
    assert stats(ha_testbed)["etcd_quorum_lost"] == 1


async def test_unknown_faults_and_nodes_are_refused_with_what_exists(ha_testbed: Testbed) -> None:
    unknown = await fault(ha_testbed, "etcd-member-sideways", "cp-2")
    no_node = await fault(ha_testbed, "apiserver-down", "cp-9")
    worker = await fault(ha_testbed, "etcd-member-down", "worker-1")

    assert unknown.code == 2
    assert "no fault named 'etcd-member-sideways'" in unknown.stderr
    assert "etcd-member-down NODE" in unknown.stderr
    assert no_node.code == 2
    assert "control planes: cp-1, cp-2, cp-3" in no_node.stderr
    assert worker.code == 2
    assert "'worker-1' is not a control plane" in worker.stderr


async def test_apiserver_error_answers_every_request_until_its_time_is_up(
    ha_testbed: Testbed,
) -> None:
    switched = await fault(ha_testbed, "apiserver-error", "500")
    assert switched.code == 0, switched.stderr

    failing = await kubectl(ha_testbed, "get", "nodes")
    assert failing.code != 0
    assert "(InternalError)" in failing.stderr

    timed = await fault(ha_testbed, "apiserver-error", "500", "--for", "1s")
    assert timed.code == 0, timed.stderr
    assert "ends by itself in 1 s" in timed.stdout

    async def answering() -> bool:
        return (await kubectl(ha_testbed, "get", "nodes")).code == 0

    await eventually(answering, "the API to answer again after 1 s")


async def test_apiserver_hang_holds_requests_until_cleared(ha_testbed: Testbed) -> None:
    assert (await fault(ha_testbed, "apiserver-hang")).code == 0
    tls = ssl.create_default_context(cafile=str(ha_testbed.apiserver.ca_path))
    headers = {"Authorization": f"Bearer {ha_testbed.apiserver.token}"}
    nodes = description(ha_testbed)["load_balancer_url"] + "/api/v1/nodes"

    async with aiohttp.ClientSession(headers=headers) as session:
        held = asyncio.create_task(session.get(nodes, ssl=tls))
        done, _ = await asyncio.wait([held], timeout=1.0)
        assert not done  # no answer while the fault holds

        assert (await fault(ha_testbed, "apiserver-hang-clear")).code == 0
        async with await asyncio.wait_for(held, DEADLINE_SECONDS) as response:
            assert response.status == 200


async def test_sshd_down_refuses_logins_until_sshd_up(full_testbed: Testbed) -> None:
    assert (await fault(full_testbed, "sshd-down", "worker-1")).code == 0

    refused = await openssh(full_testbed.fleet, "worker-1", "true")
    assert refused.code == 255  # ssh's own failure: nothing listens

    assert (await fault(full_testbed, "sshd-up", "worker-1")).code == 0
    assert (await openssh(full_testbed.fleet, "worker-1", "true")).code == 0
    unknown = await fault(full_testbed, "sshd-down", "worker-9")
    assert unknown.code == 2 and "no node 'worker-9'" in unknown.stderr


async def test_vault_sealed_for_a_while_answers_503_then_unseals_itself(
    full_testbed: Testbed,
) -> None:
    vault = description(full_testbed)["vault"]
    headers = {"X-Vault-Token": vault["token"]}
    secret = f"{vault['url']}/v1/secret/data/anything"

    async def status() -> int:
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.get(secret) as response,
        ):
            return response.status

    sealed = await fault(full_testbed, "vault-seal", "--for", "1s")
    assert sealed.code == 0, sealed.stderr
    assert await status() == 503

    async def unsealed() -> bool:
        return await status() != 503

    await eventually(unsealed, "Vault to unseal itself after 1 s")


async def test_a_hung_shim_command_returns_once_cleared(full_testbed: Testbed) -> None:
    hung = await fault(full_testbed, "shim-hang", "worker-2", "kubeadm", "version")
    assert hung.code == 0, hung.stderr

    running = asyncio.create_task(openssh(full_testbed.fleet, "worker-2", "kubeadm version"))
    done, _ = await asyncio.wait([running], timeout=1.0)
    assert not done

    assert (await fault(full_testbed, "shim-hang-clear", "worker-2")).code == 0
    finished = await running
    assert finished.code == 0, finished.stderr
    assert "kubeadm version" in finished.stdout


async def test_a_fault_asked_wrongly_is_answered_with_its_usage(testbed: Testbed) -> None:
    no_node = await fault(testbed, "apiserver-down")
    bad_duration = await fault(testbed, "apiserver-hang", "--for", "20 seconds")
    not_lasting = await fault(testbed, "apiserver-up", "cp-1", "--for", "2s")
    no_machines = await fault(testbed, "sshd-down", "worker-1")

    assert no_node.code == 2 and "usage: apiserver-down NODE [--for DURATION]" in no_node.stderr
    assert bad_duration.code == 2 and "is not a duration" in bad_duration.stderr
    assert not_lasting.code == 2 and "unknown option --for" in not_lasting.stderr
    assert no_machines.code == 2 and "no machines" in no_machines.stderr
    assert not testbed.apiserver.hang
