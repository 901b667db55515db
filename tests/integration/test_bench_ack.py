"""`python -m bench.ack` with a handful of requests: the figures line is there, shaped as
bench/RESULTS.md reads it, and every request to either app was answered 200. Timings are never
asserted."""

from __future__ import annotations

import json

import pytest

from bench import ack
from bench.ack_load import Sample

LEVEL_KEYS = {
    "kubegate_p50_ms",
    "kubegate_p95_ms",
    "kubegate_p99_ms",
    "kubegate_max_ms",
    "kubegate_failures",
    "bolt_p50_ms",
    "bolt_p95_ms",
    "bolt_p99_ms",
    "bolt_max_ms",
    "bolt_failures",
    "ratio",
    "requests",
}


def test_ack_benchmark_prints_figures_per_level_with_every_request_answered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = ack.main(["--levels", "1,2", "--requests", "8", "--warmup", "2"])

    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0
    assert figures["all_ok"] is True and figures["failures"] == 0
    for level in ("concurrency_1", "concurrency_2"):
        assert figures[level].keys() >= LEVEL_KEYS
        assert figures[level]["requests"] == 8
        assert figures[level]["kubegate_failures"] == figures[level]["bolt_failures"] == 0
        assert figures[level]["ratio"] > 0
    assert figures["max_ms"] > 0
    # kubegate did real work behind its acks: `/kube nodes` and the dry run answer privately.
    assert figures["slack_api_calls"]["chat.postEphemeral"] > 0


def test_an_answer_other_than_200_or_later_than_3_s_is_a_failure() -> None:
    samples = [Sample(0.01, 200), Sample(0.01, 401), Sample(3.5, 200), Sample(10.0, 0, "timeout")]
    assert len(ack.failures_of(samples)) == 3
