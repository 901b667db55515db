"""The README's second command on a machine without the testbed's programs: as an unprivileged
user, `scripts/test` names what is missing (with the Debian packages) within seconds and runs
nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
# Enough of a machine to run the scripts' shell; none of the tests' own programs.
BASICS = ("bash", "env", "id", "dirname")


@pytest.fixture
def bare_path() -> Iterator[str]:
    """A PATH holding only a shell and coreutils, readable by an unprivileged user."""
    directory = Path(tempfile.mkdtemp(prefix="kubegate-bare-path-"))
    try:
        directory.chmod(0o755)
        for name in BASICS:
            found = shutil.which(name)
            assert found is not None, name
            (directory / name).symlink_to(found)
        yield str(directory)
    finally:
        shutil.rmtree(directory)


def as_unprivileged_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv(1) to become an unprivileged user")
    return [setpriv, "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", *command]


def test_the_test_command_names_every_missing_program_and_its_package_within_seconds(
    bare_path: str,
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        as_unprivileged_user([str(REPO / "scripts" / "test")]),
        env={"PATH": bare_path, "HOME": "/nonexistent", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started

    said = result.stdout + result.stderr
    assert result.returncode != 0, said
    assert elapsed < 5, f"took {elapsed:.1f} s"
    for program, package in [
        ("etcd", "etcd-server"),
        ("etcdctl", "etcd-client"),
        ("prometheus-alertmanager", "prometheus-alertmanager"),
        ("sudo", "sudo"),
        ("ssh-keygen", "openssh-client"),
    ]:
        assert f"  {program}  (Debian package {package})" in said
    assert "  kubectl  (not in Debian's archive; install it from pkgs.k8s.io" in said
    assert "apt-get install " in said
    # It stopped before lint, types or pytest.
    assert "ruff" not in said and "mypy" not in said and "passed" not in said


def test_the_check_passes_quietly_where_everything_is_installed() -> None:
    result = subprocess.run(
        [str(REPO / "scripts" / "test-deps"), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        pytest.skip(f"this machine lacks some of the tests' programs:\n{result.stderr}")
    assert result.stderr == ""
