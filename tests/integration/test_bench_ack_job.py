"""`python -m bench.ack --with-job`: the acks are measured while a kubegate job runs (a drain held
by a PodDisruptionBudget), and the figures say so. Timings are never asserted."""

from __future__ import annotations

import json

import pytest

from bench import ack


def test_ack_benchmark_measures_beside_a_drain_that_runs_throughout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = ack.main(
        ["--levels", "2", "--requests", "8", "--warmup", "2", "--rounds", "2", "--with-job"]
    )

    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0 and figures["all_ok"] is True
    assert figures["with_job"] is True and "drain worker-3" in figures["job"]
    assert figures["job_state_after"] == "RUNNING"  # still held when the last turn ended
    assert figures["job_state_end"] == "SUCCEEDED"  # and done once its budget was relaxed
    level = figures["concurrency_2"]
    assert len(level["round_ratios"]) == 2 and level["median_round_ratio"] > 0
    assert level["requests"] == 8
