"""`/kube provision node` through Slack on bare spare hosts: prepared, given the cluster's
package source, joined under the asked name already labelled and tainted, Ready, with no join
token left behind or shown anywhere; bad requests refused before anything runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import serve
from bot.redact import RedactingFilter, Redactor
from testbed.fleet.layout import OPERATOR_SETTING
from testbed.fleet.shims.tokens import issued_path
from testbed.up import Testbed
from tests.conftest import running_testbed
from tests.e2e.conftest import Served, settings_for
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubectl,
    kubegate_cli,
    request,
    root_messages,
    wait_ephemeral,
    wait_reply,
    wait_text,
)
from tests.e2e.test_restart import KubegateProcess, until
from tests.integration.fleet_helpers import openssh

JOIN_CONFIG = "var/lib/kubegate/join-configuration.yaml"
TOKEN_DELETE = ["kubeadm", "token", "delete"]
ASKED = "provision node worker-9 --address 127.0.10.101 --label pool=batch --taint dedicated=batch:NoSchedule"


@pytest.fixture
async def spare_testbed(tmp_path: Path) -> AsyncIterator[Testbed]:
    """One control plane, one worker and two bare spare hosts; kubegate's inventory is the
    testbed's own, listing the spares by address as `spare-1` and `spare-2`, not under the names
    they are provisioned as (as a new user finds it)."""
    async with running_testbed(
        tmp_path / "testbed", control_planes=1, workers=1, spare=2
    ) as testbed:
        yield testbed


@pytest.fixture
async def kubegate_logging_as_deployed(
    spare_testbed: Testbed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Served]:
    """kubegate with its log captured through the redacting filter `kubegate serve` puts on
    its log handler."""
    async with serving_logged(spare_testbed, tmp_path / "kubegate.db", caplog) as served:
        yield served


@contextlib.asynccontextmanager
async def serving_logged(
    testbed: Testbed, db: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Served]:
    """`kubegate serve` in this process, its log captured through the redacting filter."""
    redactor = Redactor()
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactingFilter(redactor))
    settings = settings_for(testbed, db)
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, redactor=redactor, ready=port.set_result, stop=stop))
    await asyncio.wait([port, task], timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    testbed.slack.app_url = f"http://127.0.0.1:{port.result()}/slack/events"
    try:
        yield Served(port=port.result(), db=settings.db, settings=settings)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


def join_tokens(testbed: Testbed) -> list[str]:
    """Every bootstrap token the cluster issued (the testbed keeps them as an API server audit
    log would)."""
    path = Path(issued_path(str(testbed.fleet.public_dir / "cluster")))
    return path.read_text().split() if path.exists() else []


def kubeadm_joins(testbed: Testbed, host: str) -> list[list[str]]:
    return [c.argv for c in testbed.fleet.calls(host) if c.argv[:2] == ["kubeadm", "join"]]


async def tokens_left_on(testbed: Testbed, node: str) -> list[str]:
    listed = await openssh(testbed.fleet, node, "sudo kubeadm token list")
    assert listed.code == 0, listed.stderr
    return listed.stdout.splitlines()[1:]


def places_to_scan(testbed: Testbed, served: Served, log_text: str) -> dict[str, str]:
    return {
        "slack": json.dumps(testbed.slack.transcript_json()),
        "logs": log_text,
        "audit": kubegate_cli(served.db, "audit", "export").stdout,
        "database": "".join(  # the main file and its write-ahead log
            path.read_bytes().decode("latin-1")
            for path in served.db.parent.glob(served.db.name + "*")
        ),
    }


def assert_no_secret_in(places: dict[str, str], tokens: list[str]) -> None:
    assert tokens, "the test found no join token to look for"
    for where, text in places.items():
        for token in tokens:
            assert token not in text, f"the join token leaked into {where}"
            assert token.split(".")[1] not in text, f"the token's secret half leaked into {where}"
        assert "PRIVATE KEY" not in text, f"a private key leaked into {where}"


async def node_object(testbed: Testbed, name: str) -> dict[str, Any]:
    text = await asyncio.to_thread(kubectl, testbed, "get", "node", name, "-o", "json")
    node: dict[str, Any] = json.loads(text)
    return node


async def test_a_bare_host_joins_as_the_asked_name_ready_and_tainted_from_its_first_moment(
    spare_testbed: Testbed,
    kubegate_logging_as_deployed: Served,
    caplog: pytest.LogCaptureFixture,
) -> None:
    testbed, served = spare_testbed, kubegate_logging_as_deployed
    root = await request(testbed, "U0ALICE", ASKED)
    assert "its hostname is ip-127-0-10-101; it registers as worker-9" in root.shown
    assert "registers already tainted: dedicated=batch:NoSchedule" in root.shown
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=90)

    node = await node_object(testbed, "worker-9")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.2"
    assert node["metadata"]["labels"]["pool"] == "batch"
    assert {"key": "dedicated", "value": "batch", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert testbed.apiserver.stats()["registered_untainted"] == 0
    assert len(kubeadm_joins(testbed, "spare-1")) == 1

    root_dir = testbed.fleet.nodes["spare-1"].state_dir / "root"
    containerd = (root_dir / "etc/containerd/config.toml").read_text()
    assert OPERATOR_SETTING in containerd, "the operator's own containerd setting was lost"
    assert "SystemdCgroup = true" in containerd
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in containerd
    source = (root_dir / "etc/apt/sources.list.d/kubernetes.list").read_text()
    assert "https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /" in source
    assert (root_dir / "etc/apt/keyrings/kubernetes-apt-keyring.gpg").exists()
    state = testbed.fleet.node_state("spare-1")
    assert state["swap"] is False and state["held"] == ["kubeadm", "kubectl", "kubelet"]
    assert "# /swapfile none swap" in (root_dir / "etc/fstab").read_text()
    assert not (root_dir / JOIN_CONFIG).exists(), "the JoinConfiguration (with its token) stayed"
    assert await tokens_left_on(testbed, "cp-1") == []

    tokens = join_tokens(testbed)
    await testbed.slack.user("U0ALICE").slash("/kube audit", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "Audit")
    assert_no_secret_in(places_to_scan(testbed, served, caplog.text), tokens)
    verified = kubegate_cli(served.db, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def pin_the_wrong_key_for(testbed: Testbed, host: str, instead_of: str, path: Path) -> None:
    """kubegate's known_hosts with `host`'s line carrying `instead_of`'s key."""
    fleet = testbed.fleet
    lines = fleet.known_hosts_path.read_text().splitlines()
    wrong = fleet.nodes[instead_of].host_public_key
    target = fleet.nodes[host]
    marker = f"[{target.address}]:{target.port}"
    path.write_text(
        "\n".join(f"{marker} {wrong}" if line.startswith(marker) else line for line in lines) + "\n"
    )
    config = yaml.safe_load(testbed.config_path.read_text())
    config["clusters"][0]["inventory"]["ssh"]["known_hosts"] = str(path)
    testbed.config_path.write_text(yaml.safe_dump(config))


@pytest.fixture
async def kubegate_with_a_wrong_pin(
    spare_testbed: Testbed, tmp_path: Path
) -> AsyncIterator[Served]:
    pin_the_wrong_key_for(spare_testbed, "spare-2", "spare-1", tmp_path / "known_hosts")
    settings = settings_for(spare_testbed, tmp_path / "kubegate.db")
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, ready=port.set_result, stop=stop))
    await asyncio.wait([port, task], timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    spare_testbed.slack.app_url = f"http://127.0.0.1:{port.result()}/slack/events"
    try:
        yield Served(port=port.result(), db=settings.db, settings=settings)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_an_outside_address_a_taken_name_and_a_changed_host_key_are_refused_first(
    spare_testbed: Testbed, kubegate_with_a_wrong_pin: Served
) -> None:
    testbed = spare_testbed
    slack = testbed.slack.user("U0ALICE")
    await slack.slash("/kube provision node worker-9 --address 10.0.0.15", channel=CHANNEL)
    outside = await wait_ephemeral(testbed, "U0ALICE", "outside cluster testbed's node subnet")
    assert "127.0.10.0/24" in outside.shown
    await slack.slash("/kube provision node worker-1 --address 127.0.10.102", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "There is already a node `worker-1`")
    await slack.slash("/kube provision node worker-8 --address 127.0.10.102", channel=CHANNEL)
    changed = await wait_ephemeral(testbed, "U0ALICE", "will not provision 127.0.10.102")
    assert "CHANGED" in changed.shown and "Nothing was run there" in changed.shown
    await slack.slash(
        "/kube provision node cp-2 --address 127.0.10.102 --role control-plane", channel=CHANNEL
    )
    # A single control plane without a load balancer has no controlPlaneEndpoint to join.
    await wait_ephemeral(testbed, "U0ALICE", "has no controlPlaneEndpoint")
    assert root_messages(testbed) == []
    for host in ("spare-1", "spare-2"):
        assert testbed.fleet.calls(host) == [], f"something ran on {host}"


@pytest.fixture
async def kubegate_process(
    spare_testbed: Testbed, tmp_path: Path
) -> AsyncIterator[KubegateProcess]:
    served = KubegateProcess(spare_testbed, tmp_path / "kubegate.db", tmp_path / "kubegate.log")
    try:
        yield served
    finally:
        if served.process and served.process.poll() is None:
            served.kill(signal.SIGTERM)


def token_deletes(testbed: Testbed) -> list[list[str]]:
    return [c.argv for c in testbed.fleet.calls("cp-1") if c.argv[:3] == TOKEN_DELETE]


async def test_kubegate_killed_in_the_join_step_resumes_to_success_with_one_join(
    spare_testbed: Testbed, kubegate_process: KubegateProcess, tmp_path: Path
) -> None:
    testbed, db = spare_testbed, tmp_path / "kubegate.db"
    await kubegate_process.start()
    # The join has happened; kubegate is deleting its token when it dies.
    testbed.fleet.hang("cp-1", " ".join(TOKEN_DELETE), times=1)
    root = await request(testbed, "U0ALICE", ASKED)
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await until(lambda: bool(token_deletes(testbed)), timeout=90)
    assert len(kubeadm_joins(testbed, "spare-1")) == 1
    kubegate_process.kill()
    # The orphaned `kubeadm token delete` may finish or die with its session, as on a real
    # host without a terminal; either way the resumed job must end with no token left.
    testbed.fleet.clear_faults("cp-1")

    await kubegate_process.start()
    note = await wait_reply(testbed, root, "was interrupted", timeout=30)
    await click(testbed, "U0ALICE", note, "Resume")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=90)
    await wait_reply(testbed, root, "worker-9 had already joined before the restart")

    assert len(kubeadm_joins(testbed, "spare-1")) == 1, "the join ran again"
    node = await node_object(testbed, "worker-9")
    assert {"key": "dedicated", "value": "batch", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert testbed.apiserver.stats()["registered_untainted"] == 0
    assert await tokens_left_on(testbed, "cp-1") == [], "the leftover token was not deleted"
    root_dir = testbed.fleet.nodes["spare-1"].state_dir / "root"
    assert not (root_dir / JOIN_CONFIG).exists()
    served = Served(port=kubegate_process.port, db=db, settings=settings_for(testbed, db))
    log = (tmp_path / "kubegate.log").read_text()
    assert_no_secret_in(places_to_scan(testbed, served, log), join_tokens(testbed))


async def test_a_join_still_running_when_kubegate_restarts_is_awaited_not_run_twice(
    spare_testbed: Testbed, kubegate_process: KubegateProcess, tmp_path: Path
) -> None:
    testbed = spare_testbed
    await kubegate_process.start()
    # kubeadm join is running on the host (held) when kubegate dies; it outlives the session.
    testbed.fleet.hang("spare-1", "kubeadm join")
    root = await request(testbed, "U0ALICE", ASKED)
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await until(lambda: bool(kubeadm_joins(testbed, "spare-1")), timeout=90)
    kubegate_process.kill()

    await kubegate_process.start()
    note = await wait_reply(testbed, root, "was interrupted", timeout=30)
    await click(testbed, "U0ALICE", note, "Resume")
    await wait_text(testbed, root.ts, "RUNNING", timeout=30)
    testbed.fleet.clear_faults("spare-1")  # the old join goes on and finishes
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=90)
    await wait_reply(testbed, root, "worker-9 had already joined before the restart")
    assert len(kubeadm_joins(testbed, "spare-1")) == 1, "the join ran again"
    assert await tokens_left_on(testbed, "cp-1") == []
    root_dir = testbed.fleet.nodes["spare-1"].state_dir / "root"
    assert not (root_dir / JOIN_CONFIG).exists()
