"""Upgrades on the HA testbed through Slack (issue 8's must-shows): three control planes behind a
load balancer, a real three-member etcd, real sudo, apt/dnf sources per minor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.up import Testbed
from tests.conftest import running_testbed
from tests.e2e.conftest import Served, serving
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubectl,
    request,
    root_messages,
    wait_ephemeral,
    wait_text,
)
from tests.integration.fleet_helpers import openssh
from tests.integration.test_ha_testbed import apiserver_url, eventually, fault, version_at

APT_SOURCE = "etc/apt/sources.list.d/kubernetes.list"
DNF_REPO = "etc/yum.repos.d/kubernetes.repo"
CHANGES = ("apt-get", "apt-mark", "dnf", "kubeadm", "systemctl")


@pytest.fixture
async def ha(tmp_path: Path) -> AsyncIterator[Testbed]:
    async with running_testbed(
        tmp_path / "testbed", control_planes=3, workers=4, apiserver_startup=1.0
    ) as world:
        yield world


@pytest.fixture
async def kubegate_on_ha(ha: Testbed, tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(ha, tmp_path, {}) as served:
        yield served


def node_root(testbed: Testbed, node: str) -> Path:
    described = json.loads((testbed.directory / "testbed.json").read_text())
    return Path(described["ssh"]["nodes"][node]["root"])


def changes_made(testbed: Testbed, node: str) -> list[list[str]]:
    """What the node was told to change (sudo's own line and read-only probes left out)."""
    probes = (["kubeadm", "version"], ["apt-mark", "showhold"])
    return [
        call.argv
        for call in testbed.fleet.calls(node)
        if call.argv[0] in CHANGES and not any(call.argv[: len(p)] == p for p in probes)
    ]


def kubeadm_order(calls: list[list[str]]) -> list[str]:
    """The node's procedure as kubeadm's upgrade guide orders it, one word per phase."""
    phases = []
    for argv in calls:
        if "install" in argv and any(a.startswith("kubeadm") for a in argv):
            phase = "kubeadm-package"
        elif argv[:2] == ["kubeadm", "upgrade"]:
            phase = f"kubeadm-{argv[2]}"
        elif "install" in argv and any(a.startswith("kubelet") for a in argv):
            phase = "kubelet-package"
        elif argv[:2] == ["systemctl", "restart"]:
            phase = "restart"
        else:
            continue
        if not phases or phases[-1] != phase:
            phases.append(phase)
    return phases


async def approved(testbed: Testbed, text: str) -> str:
    root = await request(testbed, "U0ALICE", text)
    await click(testbed, "U0BOB", root, "Approve")
    await wait_text(testbed, root.ts, "Needs 1 more approval")
    await click(testbed, "U0CAROL", root, "Approve")
    return root.ts


class LoadBalancerPoll:
    """`kubectl get nodes` through the load balancer, over and over, counting failures."""

    def __init__(self, testbed: Testbed) -> None:
        self.testbed = testbed
        self.answers = 0
        self.failures: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        while True:
            try:
                await asyncio.to_thread(
                    kubectl, self.testbed, "get", "nodes", "--request-timeout", "5s"
                )
                self.answers += 1
            except subprocess.CalledProcessError as error:
                self.failures.append(error.stderr)
            await asyncio.sleep(0.2)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LoadBalancerPoll]:
        self._task = asyncio.create_task(self._poll())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def test_an_ha_cluster_upgrades_a_minor_with_two_approvals_and_the_api_always_answers(
    ha: Testbed, kubegate_on_ha: Served
) -> None:
    async with LoadBalancerPoll(ha).running() as poll:
        ts = await approved(ha, "upgrade cluster --to v1.32.0 --max-unavailable 2")
        await wait_text(ha, ts, "SUCCEEDED", timeout=400)
    assert poll.answers > 10 and poll.failures == [], poll.failures[:3]

    nodes = json.loads(await asyncio.to_thread(kubectl, ha, "get", "nodes", "-o", "json"))
    for item in nodes["items"]:
        name = item["metadata"]["name"]
        assert item["status"]["nodeInfo"]["kubeletVersion"] == "v1.32.0", name
        assert not item["spec"].get("unschedulable"), name
        source = (node_root(ha, name) / APT_SOURCE).read_text()
        assert "/core:/stable:/v1.32/deb/" in source, (name, source)
        first = "kubeadm-apply" if name == "cp-1" else "kubeadm-node"
        # The source switch is a file write (checked above); the shims log the rest.
        assert kubeadm_order(changes_made(ha, name)) == [
            "kubeadm-package",
            first,
            "kubelet-package",
            "restart",
        ], name
    stats = ha.apiserver.stats()
    assert stats["pdb_violations"] == 0
    assert stats["max_apiservers_down"] <= 1
    assert stats["etcd_quorum_lost"] == 0
    assert stats["max_unschedulable_nodes"] <= 2


async def test_a_control_plane_upgrade_while_another_runs_is_refused_naming_the_running_job(
    ha: Testbed, kubegate_on_ha: Served
) -> None:
    cp1 = "sudo -n -- apt-get install -y --allow-change-held-packages kubeadm=1.31.3-* && "
    cp1 += "sudo -n -- kubeadm upgrade apply v1.31.3 -y"
    assert (await openssh(ha.fleet, "cp-1", cp1)).code == 0
    url = apiserver_url(ha, "cp-1")

    async def cp1_moved() -> bool:
        return await version_at(ha, url) == "v1.31.3"

    await eventually(cp1_moved, "cp-1's API server to serve v1.31.3")
    ha.fleet.hang("cp-3", "kubeadm upgrade node")  # keeps cp-3's job running
    ts = await approved(ha, "upgrade cp-3 --to v1.31.3")
    await wait_text(ha, ts, "RUNNING", timeout=60)
    await ha.slack.user("U0ALICE").slash("/kube upgrade cp-2 --to v1.31.3", channel=CHANNEL)
    refused = await wait_ephemeral(ha, "U0ALICE", "holds the control-plane lock")
    assert "Job #1 (`upgrade cp-3 --to v1.31.3`)" in refused.shown
    assert len(root_messages(ha)) == 1
    ha.fleet.clear_faults("cp-3")
    await wait_text(ha, ts, "SUCCEEDED", timeout=120)


async def test_with_an_etcd_member_down_every_control_plane_upgrade_is_refused_untouched(
    ha: Testbed, kubegate_on_ha: Served
) -> None:
    assert (await fault(ha, "etcd-member-down", "cp-3")).code == 0
    slack = ha.slack.user("U0ALICE")
    for text in ("upgrade cp-1 --to v1.32.0", "upgrade cluster --to v1.32.0"):
        await slack.slash(f"/kube {text}", channel=CHANNEL)
    refusals = [
        await wait_ephemeral(ha, "U0ALICE", "Refusing to upgrade cp-1 to v1.32.0"),
        await wait_ephemeral(ha, "U0ALICE", "Refusing to upgrade cluster testbed"),
    ]
    for refused in refusals:
        assert "etcd must be healthy with every member up" in refused.shown
        assert "nothing was changed" in refused.shown
    assert root_messages(ha) == []
    for node in ("cp-1", "cp-2", "cp-3"):
        assert changes_made(ha, node) == [], node


def with_dnf(testbed: Testbed) -> dict[str, Any]:
    config = yaml.safe_load(testbed.config_path.read_text())
    config["clusters"][0]["inventory"]["package_manager"] = "dnf"
    return {"clusters": config["clusters"]}


async def test_the_same_minor_upgrade_with_dnf_switches_the_repo_file_and_finishes(
    full_testbed: Testbed, tmp_path: Path
) -> None:
    async with serving(full_testbed, tmp_path, with_dnf(full_testbed)):
        ts = await approved(full_testbed, "upgrade cluster --to v1.32.0 --max-unavailable 2")
        await wait_text(full_testbed, ts, "SUCCEEDED", timeout=300)
    for node in ("cp-1", "worker-1", "worker-2", "worker-3"):
        repo = (node_root(full_testbed, node) / DNF_REPO).read_text()
        assert "baseurl=https://pkgs.k8s.io/core:/stable:/v1.32/rpm/" in repo, node
        assert "exclude=kubelet kubeadm kubectl" in repo, node
        assert full_testbed.fleet.node_state(node)["packages"]["kubelet"].startswith("1.32.0")
    line = await asyncio.to_thread(kubectl, full_testbed, "get", "nodes", "--no-headers")
    assert line.count("v1.32.0") == 4 and "SchedulingDisabled" not in line
