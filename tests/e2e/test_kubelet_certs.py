"""`/kube certs` reaches past the control planes: every node's kubelet client certificate, read
with sudo from the node itself, workers included, soonest first and flagged when near."""

from __future__ import annotations

from testbed.fleet.shims.pki import write_kubelet_client
from testbed.up import Testbed
from tests.e2e.conftest import Served
from tests.e2e.slack_steps import CHANNEL, wait_ephemeral


async def test_certs_shows_each_nodes_kubelet_client_certificate_and_flags_the_near_one(
    full_testbed: Testbed, kubegate_on_machines: Served
) -> None:
    testbed = full_testbed
    root = testbed.fleet.nodes["worker-2"].state_dir / "root"
    authority = str(testbed.fleet.nodes["cp-1"].state_dir / "root/etc/kubernetes/pki/ca")
    write_kubelet_client(str(root), "worker-2", authority, days=5)  # as root, mode 0600

    await testbed.slack.user("U0CAROL").slash("/kube certs", channel=CHANNEL)
    answer = await wait_ephemeral(testbed, "U0CAROL", "Kubelet client certificates")

    table = answer.shown.split("Kubelet client certificates", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith(("cp-", "worker-"))]
    assert rows[0].split()[0] == "worker-2"  # soonest first
    assert {row.split()[0] for row in rows} == {"cp-1", "worker-1", "worker-2", "worker-3"}
    assert "⚠️" in rows[0] and all("⚠️" not in row for row in rows[1:])
    assert "could not read" not in answer.shown
    assert "PRIVATE KEY" not in answer.shown
    reads = [" ".join(c.argv) for c in testbed.fleet.calls("worker-2")]
    assert any(call.startswith("sudo -n -- openssl x509 -noout -enddate") for call in reads)
