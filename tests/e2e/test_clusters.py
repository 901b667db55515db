"""Several clusters: the channel picks the default one, `-c` picks another, locks are per cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from testbed.up import Testbed
from tests.e2e.conftest import serving
from tests.e2e.slack_steps import CHANNEL, request, wait_ephemeral


def two_clusters(testbed: Testbed) -> dict[str, Any]:
    config = yaml.safe_load(testbed.config_path.read_text())
    first = config["clusters"][0]
    # Same API behind both names: what differs is how kubegate routes, locks and reports.
    config["clusters"] = [first, {**first, "name": "staging", "channels": ["C0STAGING"]}]
    return config


async def test_the_channel_default_and_dash_c_route_to_the_right_cluster(
    testbed: Testbed, tmp_path: Path
) -> None:
    async with serving(testbed, tmp_path, two_clusters(testbed)):
        root = await request(testbed, "U0ALICE", "cordon worker-1")
        assert "cluster testbed" in root.shown
        await testbed.slack.user("U0ALICE").slash("/kube cordon worker-1", channel="C0STAGING")
        other = await testbed.slack.wait_for(
            lambda: next(iter(testbed.slack.messages("C0STAGING")), None)
        )
        assert "cluster staging" in other.shown  # locks are per cluster: no conflict
        await testbed.slack.user("U0ALICE").slash("/kube cordon worker-1 -c prod", channel=CHANNEL)
        await wait_ephemeral(
            testbed, "U0ALICE", "There is no cluster `prod`. Known clusters: testbed, staging"
        )
        await testbed.slack.user("U0ALICE").slash("/kube nodes", channel="C0RANDOM")
        refusal = await testbed.slack.wait_for(
            lambda: next((m for m in testbed.slack.ephemerals("C0RANDOM", "U0ALICE")), None)
        )
        assert "no default cluster" in refusal.shown and "-c" in refusal.shown
