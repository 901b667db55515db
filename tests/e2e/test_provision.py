"""`/kube provision node` through Slack: a bare host prepared, joined with a fresh token and
Ready; the token never shown, logged, audited or stored; bad requests refused in words."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from bot.app import serve
from bot.redact import RedactingFilter, Redactor
from testbed.up import Testbed
from tests.e2e.conftest import Served, settings_for
from tests.e2e.slack_steps import (
    CHANNEL,
    click,
    kubectl,
    kubegate_cli,
    request,
    root_messages,
    wait_ephemeral,
    wait_text,
)

NEW_NODES = {
    "labels": {"example.com/pool": "batch"},
    "taints": ["example.com/pool=batch:NoSchedule"],
}


@pytest.fixture
async def kubegate_logging_as_deployed(
    full_testbed: Testbed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Served]:
    """kubegate with labels/taints for new nodes, its log captured through the redacting filter
    `kubegate serve` puts on its log handler."""
    config = yaml.safe_load(full_testbed.config_path.read_text())
    config["clusters"][0]["inventory"]["new_nodes"] = NEW_NODES
    full_testbed.config_path.write_text(yaml.safe_dump(config))
    redactor = Redactor()
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactingFilter(redactor))
    settings = settings_for(full_testbed, tmp_path / "kubegate.db")
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, redactor=redactor, ready=port.set_result, stop=stop))
    await asyncio.wait([port, task], timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    full_testbed.slack.app_url = f"http://127.0.0.1:{port.result()}/slack/events"
    try:
        yield Served(port=port.result(), db=settings.db, settings=settings)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


def join_token(testbed: Testbed, node: str) -> str:
    joins = [c.argv for c in testbed.fleet.calls(node) if c.argv[:2] == ["kubeadm", "join"]]
    assert len(joins) == 1, joins
    return joins[0][joins[0].index("--token") + 1]


async def test_a_bare_host_is_prepared_joined_labelled_and_ready_and_its_token_appears_nowhere(
    full_testbed: Testbed, kubegate_logging_as_deployed: Served, caplog: pytest.LogCaptureFixture
) -> None:
    testbed, served = full_testbed, kubegate_logging_as_deployed
    root = await request(testbed, "U0ALICE", "provision node spare-1 --address 127.0.10.101")
    assert "joins cluster testbed as a worker at v1.31.2" in root.shown
    assert "Label and taint spare-1: example.com/pool=batch" in root.shown
    await click(testbed, "U0BOB", root, "Approve")
    await click(testbed, "U0CAROL", root, "Approve")
    await wait_text(testbed, root.ts, "SUCCEEDED", timeout=60)

    node = json.loads(
        await asyncio.to_thread(kubectl, testbed, "get", "node", "spare-1", "-o", "json")
    )
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert (
        ready[0]["status"] == "True" and node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.2"
    )
    assert node["metadata"]["labels"]["example.com/pool"] == "batch"
    assert {"key": "example.com/pool", "value": "batch", "effect": "NoSchedule"} in node["spec"][
        "taints"
    ]
    state = testbed.fleet.node_state("spare-1")
    assert state["swap"] is False and {"overlay", "br_netfilter"} <= set(state["modules"])
    assert state["sysctl"]["net.ipv4.ip_forward"] == "1" and state["containerd"]["systemd_cgroup"]
    assert state["held"] == ["kubeadm", "kubectl", "kubelet"]
    root_dir = testbed.fleet.nodes["spare-1"].state_dir / "root"
    assert "# /swapfile none swap" in (root_dir / "etc/fstab").read_text()
    assert (root_dir / "etc/modules-load.d/k8s.conf").read_text() == "overlay\nbr_netfilter\n"
    assert "net.ipv4.ip_forward = 1" in (root_dir / "etc/sysctl.d/k8s.conf").read_text()
    assert "SystemdCgroup = true" in (root_dir / "etc/containerd/config.toml").read_text()

    token = join_token(testbed, "spare-1")
    await testbed.slack.user("U0ALICE").slash("/kube audit", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "Audit")
    places = {
        "slack": json.dumps(testbed.slack.transcript_json()),
        "logs": caplog.text,
        "audit": kubegate_cli(served.db, "audit", "export").stdout,
        "database": "".join(  # the main file and its write-ahead log
            path.read_bytes().decode("latin-1")
            for path in served.db.parent.glob(served.db.name + "*")
        ),
    }
    # asyncssh logs every command line at INFO: the join command reached the log, masked.
    assert "Command: sudo -n -- [redacted]" in caplog.text
    for where, text in places.items():
        assert token not in text, f"the join token leaked into {where}"
        assert token.split(".")[1] not in text, f"the token's secret half leaked into {where}"
    verified = kubegate_cli(served.db, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_a_wrong_address_a_taken_name_and_a_control_plane_are_refused_in_words(
    full_testbed: Testbed, kubegate_logging_as_deployed: Served
) -> None:
    testbed = full_testbed
    slack = testbed.slack.user("U0ALICE")
    await slack.slash("/kube provision node spare-1 --address 10.0.0.15", channel=CHANNEL)
    outside = await wait_ephemeral(testbed, "U0ALICE", "outside cluster testbed's node subnet")
    assert "127.0.10.0/24" in outside.shown
    await slack.slash("/kube provision node worker-1 --address 127.0.10.150", channel=CHANNEL)
    await wait_ephemeral(testbed, "U0ALICE", "There is already a node `worker-1`")
    await slack.slash("/kube provision node spare-1 --address 127.0.10.150", channel=CHANNEL)
    await wait_ephemeral(
        testbed, "U0ALICE", "inventory has spare-1 at 127.0.10.101, not 127.0.10.150"
    )
    await slack.slash(
        "/kube provision node spare-1 --address 127.0.10.101 --role control-plane", channel=CHANNEL
    )
    await wait_ephemeral(testbed, "U0ALICE", "not available yet")
    assert root_messages(testbed) == []
    assert [c for c in testbed.fleet.calls("spare-1") if c.argv[0] != "sudo"] == []
