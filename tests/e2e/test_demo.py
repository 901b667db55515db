"""The README's first command: `kubegate demo` takes a newcomer through a real cordon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """/kube help
/kube cordon worker-2
:as U0BOB
1
/kube nodes
"""


def test_kubegate_demo_walks_a_cordon_from_request_to_success(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kubegate"), "demo", "--dir", str(tmp_path / "demo")],
        input=SCRIPT,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "requested by @alice" in out and "[1] Approve" in out
    assert "bob clicked [Approve]" in out
    assert "SUCCEEDED" in out and "Approved by @bob" in out
    assert "worker-2" in out and "SchedulingDisabled" in out
    assert not (tmp_path / "demo" / "testbed.json").read_text().count("Traceback")


def test_kubegate_demo_starts_the_testbed_shape_asked_for(tmp_path: Path) -> None:
    kubegate = str(Path(sys.executable).parent / "kubegate")
    shape = ["--control-planes", "3", "--workers", "1", "--spare", "2"]
    result = subprocess.run(
        [kubegate, "demo", "--dir", str(tmp_path / "demo"), *shape],
        input="/kube status\n",
        capture_output=True,
        text=True,
        timeout=150,
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "control planes cp-1, cp-2, cp-3; load balancer https://" in out
    assert "bare hosts to provision spare-1, spare-2" in out
    assert "Control planes: cp-1 (Ready), cp-2 (Ready), cp-3 (Ready)" in out
