"""A deliberately hanging test fails the run within its time limit, naming it: in its body or
in an async fixture's teardown, with and without xdist workers (tests/timeouts.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]

HANGING = """
import asyncio
import threading

import pytest


@pytest.fixture
async def teardown_that_never_returns():
    yield
    # The event loop waits on a thread that never finishes: SIGALRM cannot end this.
    await asyncio.to_thread(threading.Event().wait)


def test_quick():
    pass


def test_body_hangs():
    threading.Event().wait()


async def test_teardown_hangs(teardown_that_never_returns):
    pass
"""


def run_pytest(directory: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """pytest with the project's own settings (pyproject.toml), its time limit cut to 3 s."""
    project = ["-c", str(REPO / "pyproject.toml"), "--rootdir", str(directory)]
    quiet = ["-p", "no:cacheprovider", "-q"]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *project, *quiet, "-o", "timeout=3", *args],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, time.monotonic() - started


@pytest.fixture
def hanging_tests(tmp_path: Path) -> Path:
    (tmp_path / "test_hanging.py").write_text(HANGING)
    return tmp_path


@pytest.mark.parametrize("hanging", ["test_body_hangs", "test_teardown_hangs"])
def test_a_hanging_test_ends_a_run_without_workers_naming_it(
    hanging_tests: Path, hanging: str
) -> None:
    result, elapsed = run_pytest(hanging_tests, "-p", "no:xdist", "-k", f"quick or {hanging}")

    said = result.stdout + result.stderr
    assert result.returncode != 0, said
    assert elapsed < 60, f"took {elapsed:.0f} s"
    assert f"TIMEOUT test_hanging.py::{hanging} ran past its 3 s limit" in said


def test_hanging_tests_fail_a_run_with_two_workers_each_named_and_the_rest_still_run(
    hanging_tests: Path,
) -> None:
    result, elapsed = run_pytest(hanging_tests, "-n", "2")

    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert elapsed < 60, f"took {elapsed:.0f} s"
    assert "crashed while running 'test_hanging.py::test_body_hangs'" in said
    assert "crashed while running 'test_hanging.py::test_teardown_hangs'" in said
    assert "FAILED test_hanging.py::test_body_hangs" in said
    assert "FAILED test_hanging.py::test_teardown_hangs" in said
    # test_quick passes; the hanging teardown's test passed its body too.
    assert "2 failed, 2 passed" in said
