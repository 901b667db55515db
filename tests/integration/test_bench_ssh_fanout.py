"""`python -m bench.ssh_fanout` on a small fleet, kubegate's ways only: the figures line is there,
shaped as bench/RESULTS.md reads it, and every node answered. Timings are never asserted."""

from __future__ import annotations

import json

import pytest

from bench import ssh_fanout
from playbooks.ssh import CommandResult, SshError

NODES = 5


def test_fanout_benchmark_prints_figures_with_every_node_answering(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = ssh_fanout.main(["--nodes", str(NODES), "--ways", "kubegate"])

    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last_line)
    assert status == 0
    assert figures["nodes"] == NODES
    assert figures["kubegate_cold_answered"] == figures["kubegate_warm_answered"] == NODES
    assert figures["all_answered"] is True
    assert figures["kubegate_cold_s"] > 0 and figures["kubegate_warm_s"] > 0
    # Ways not run are reported as null, never as a figure.
    assert figures["ansible_s"] is None and figures["openssh_s"] is None
    assert figures["ratio"] is None


def test_a_node_that_does_not_answer_right_is_counted_as_a_failure() -> None:
    answered = ssh_fanout.checked(
        [
            CommandResult("node-01", "sh -c …", 0, "6.1.0\n", "", 0.2),
            CommandResult("node-02", "sh -c …", 0, "something else\n", "", 0.2),
            SshError("cannot connect", node="node-03"),
        ],
        0.5,
        "6.1.0",
    )
    assert answered.answered == 1
    assert [failure.split(":")[0] for failure in answered.failures] == ["node-02", "node-03"]
