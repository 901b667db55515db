"""The right host (issue 8): before anything runs on a Node over SSH, the host proves it is that
Node; an inventory that leads to another machine changes nothing, there or in the cluster: the
plan is refused before anyone is asked to approve it, and a host that changed after approval
stops the job before the node is cordoned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
import yaml

from playbooks.ssh import Credentials, SshExecutor, SshTarget, WrongHostError
from testbed.up import Testbed
from tests.conftest import running_testbed
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubectl,
    request,
    root_messages,
    unschedulable,
    wait_ephemeral,
    wait_reply,
    wait_text,
)

PROBE_MARK = "## kubelet-client"  # in the one script kubegate's identity probe runs


def send_worker_3_to_worker_2(testbed: Testbed) -> None:
    """An operator's slip: the inventory sends worker-3 to worker-2's address and sshd."""
    config = yaml.safe_load(testbed.config_path.read_text())
    nodes = config["clusters"][0]["inventory"]["nodes"]
    nodes["worker-3"] = dict(nodes["worker-2"])
    testbed.config_path.write_text(yaml.safe_dump(config))


@pytest.fixture
async def kubegate_with_worker_3_at_worker_2(
    full_testbed: Testbed, tmp_path: Path
) -> AsyncIterator[Served]:
    send_worker_3_to_worker_2(full_testbed)
    async with serving(full_testbed, tmp_path, {}) as served:
        yield served


def kubelet_version(testbed: Testbed, node: str) -> str:
    return str(testbed.fleet.node_state(node)["kubelet"]["version"])


async def pods_on(testbed: Testbed, node: str) -> list[str]:
    listed = await asyncio.to_thread(
        kubectl,
        testbed,
        *("get", "pods", "-A", "--field-selector", f"spec.nodeName={node}"),
        *("-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{' '}{end}"),
    )
    return sorted(listed.split())


def only_asked_who_it_is(testbed: Testbed, host: str) -> bool:
    """The host answered kubegate's identity probe and ran nothing else."""
    calls = testbed.fleet.calls(host)
    return bool(calls) and all(PROBE_MARK in " ".join(call.argv) for call in calls)


async def test_an_upgrade_sent_to_another_nodes_host_is_refused_before_anyone_is_asked_to_approve(
    full_testbed: Testbed, kubegate_with_worker_3_at_worker_2: Served
) -> None:
    testbed = full_testbed
    address = testbed.fleet.nodes["worker-2"].address
    response = await testbed.slack.user("U0ALICE").slash(
        "/kube upgrade worker-3 --to v1.31.3", channel=CHANNEL
    )
    assert response.status == 200

    refused = await wait_ephemeral(testbed, "U0ALICE", "Refusing to upgrade worker-3")
    assert refused.shown.startswith("Refusing to upgrade worker-3; nothing was changed.")
    assert (
        f"worker-3's inventory address {address} leads to worker-2, not to worker-3 "
        "(its kubelet client certificate says so)" in refused.shown
    )
    assert root_messages(testbed) == [], "no job, so no approval is asked of anyone"
    assert only_asked_who_it_is(testbed, "worker-2")
    assert await unschedulable(testbed, "worker-3") != "true"
    assert kubelet_version(testbed, "worker-2") == kubelet_version(testbed, "worker-3") == "v1.31.2"


async def test_a_host_swapped_after_approval_stops_the_upgrade_with_worker_3_untouched(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    testbed = full_testbed
    await testbed.apiserver.load_scenario("drain")
    pods_before = await pods_on(testbed, "worker-3")
    assert pods_before, "worker-3 runs pods its drain would evict"
    async with serving(testbed, tmp_path, {}):
        root = await request(testbed, "U0ALICE", "upgrade worker-3 --to v1.31.3 --force")
        await click(testbed, "U0BOB", root, "Approve")
        await wait_text(testbed, root.ts, "Needs 1 more approval")
    # Between the two approvals the inventory changes and kubegate is restarted to load it.
    send_worker_3_to_worker_2(testbed)
    address = testbed.fleet.nodes["worker-2"].address
    async with serving(testbed, tmp_path, {}):
        await click(testbed, "U0CAROL", root, "Approve")
        ended = await wait_text(testbed, root.ts, "FAILED", timeout=60)

    assert "The cluster changed since approval: Refusing to upgrade worker-3" in ended.shown
    assert f"worker-3's inventory address {address} leads to worker-2" in ended.shown
    assert await unschedulable(testbed, "worker-3") != "true"
    assert await pods_on(testbed, "worker-3") == pods_before
    assert only_asked_who_it_is(testbed, "worker-2")
    assert kubelet_version(testbed, "worker-3") == "v1.31.2"


async def test_a_host_unreachable_when_the_job_starts_stops_it_before_the_cordon_with_nothing_to_undo(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    await testbed.apiserver.load_scenario("drain")
    pods_before = await pods_on(testbed, "worker-3")
    root = await request(testbed, "U0ALICE", "upgrade worker-3 --to v1.31.3 --force")
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "Needs 1 more approval")
    await testbed.faults.apply("sshd-down", ["worker-3"])
    await click(testbed, "U0CAROL", root, "Approve")

    halted = await wait_reply(testbed, root, "halted", timeout=60)
    assert "kubegate cannot ask worker-3's host who it is" in halted.shown
    assert "Nothing was changed on worker-3" in halted.shown
    assert await unschedulable(testbed, "worker-3") != "true"
    assert await pods_on(testbed, "worker-3") == pods_before

    await click(testbed, "U0ALICE", halted, "Abort")
    cancelled = await wait_text(testbed, root.ts, "CANCELLED", timeout=30)
    assert "Aborted by <@U0ALICE>. Nothing to undo." in cancelled.shown
    assert await unschedulable(testbed, "worker-3") != "true"
    assert await pods_on(testbed, "worker-3") == pods_before


def fleet_target(testbed: Testbed, name: str, *, host: str, check_identity: bool) -> SshTarget:
    node = testbed.fleet.nodes[host]
    return SshTarget(
        node=name,
        host=node.address,
        port=node.port,
        user=testbed.fleet.user,
        sudo=True,
        check_identity=check_identity,
    )


async def test_each_machine_has_its_own_name_and_a_new_one_is_exempt_until_it_is_a_node(
    full_testbed: Testbed,
) -> None:
    testbed = full_testbed
    key = asyncssh.import_private_key(testbed.fleet.client_key_path.read_text())
    ssh = SshExecutor(testbed.fleet.known_hosts_path.read_text(), Credentials(key))
    spare = testbed.fleet.nodes["spare-1"]
    try:
        names = {
            host: (
                await ssh.run(
                    fleet_target(testbed, host, host=host, check_identity=True), ["uname", "-n"]
                )
            ).stdout.strip()
            for host in ("cp-1", "worker-1", "worker-2")
        }
        # A bare machine is its provider's ip-… until it joins: as a would-be Node it may be
        # reached (provisioning), as a Node of that name it is refused.
        joining = fleet_target(testbed, "worker-9", host="spare-1", check_identity=False)
        provider_name = (await ssh.run(joining, ["uname", "-n"])).stdout.strip()
        with pytest.raises(WrongHostError) as refused:
            await ssh.run(
                fleet_target(testbed, "worker-9", host="spare-1", check_identity=True), ["true"]
            )
    finally:
        await ssh.close()
    assert names == {"cp-1": "cp-1", "worker-1": "worker-1", "worker-2": "worker-2"}
    assert provider_name == "ip-" + spare.address.replace(".", "-")
    assert refused.value.message.startswith(
        f"refusing to run on {spare.address}: it is {provider_name}, not worker-9 (its hostname"
    )


@pytest.fixture
async def kubegate_with_a_spare_as_worker_9(
    tmp_path: Path,
) -> AsyncIterator[tuple[Testbed, Served]]:
    """A bare spare host that the inventory lists under the Node name it will get."""
    async with running_testbed(tmp_path / "testbed", workers=1, spare=1) as testbed:
        config = yaml.safe_load(testbed.config_path.read_text())
        nodes = config["clusters"][0]["inventory"]["nodes"]
        nodes["worker-9"] = dict(nodes["spare-1"])
        testbed.config_path.write_text(yaml.safe_dump(config))
        async with serving(testbed, tmp_path, {}) as served:
            yield testbed, served


async def test_a_host_provisioned_under_another_name_than_its_hostname_is_that_node_afterwards(
    kubegate_with_a_spare_as_worker_9: tuple[Testbed, Served],
) -> None:
    testbed, _ = kubegate_with_a_spare_as_worker_9
    spare = testbed.fleet.nodes["spare-1"]
    root = await request(testbed, "U0ALICE", f"provision node worker-9 --address {spare.address}")
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=90)

    # kubeadm joined it as worker-9 on a host named ip-…: the kubelet's --hostname-override
    # says which Node it is, and kubegate's next job there is let through.
    key = asyncssh.import_private_key(testbed.fleet.client_key_path.read_text())
    ssh = SshExecutor(testbed.fleet.known_hosts_path.read_text(), Credentials(key))
    try:
        as_node = fleet_target(testbed, "worker-9", host="spare-1", check_identity=True)
        ran = await ssh.run(as_node, ["kubeadm", "version", "-o", "short"])
        with pytest.raises(WrongHostError) as refused:
            await ssh.run(
                fleet_target(testbed, "worker-1", host="spare-1", check_identity=True), ["true"]
            )
    finally:
        await ssh.close()
    assert ran.ok, ran.stderr
    assert (
        "it is worker-9, not worker-1 (its kubelet's --hostname-override" in refused.value.message
    )
