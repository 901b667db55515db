"""The README's second command on a machine without the testbed's programs: as an unprivileged
user, `scripts/test` names what is missing (with the Debian packages) within seconds and runs
nothing else; as root it installs the Debian packages, updating the package lists first on a
fresh machine."""

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
def bare_machine() -> Iterator[tuple[Path, str]]:
    """The repository's scripts where an unprivileged user can run them (a clone may sit in
    root's home), and a PATH holding only a shell and coreutils."""
    directory = Path(tempfile.mkdtemp(prefix="kubegate-bare-machine-"))
    try:
        directory.chmod(0o755)
        shutil.copytree(REPO / "scripts", directory / "checkout" / "scripts")
        (directory / "bin").mkdir()
        for name in BASICS:
            found = shutil.which(name)
            assert found is not None, name
            (directory / "bin" / name).symlink_to(found)
        for path in [
            directory / "checkout",
            *(directory / "checkout").rglob("*"),
            directory / "bin",
        ]:
            path.chmod(0o755)
        yield directory / "checkout", str(directory / "bin")
    finally:
        shutil.rmtree(directory)


def as_unprivileged_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed; scripts/test-deps checks it"
    return [setpriv, "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", *command]


def test_the_test_command_names_every_missing_program_and_its_package_within_seconds(
    bare_machine: tuple[Path, str],
) -> None:
    checkout, bare_path = bare_machine
    started = time.monotonic()
    result = subprocess.run(
        as_unprivileged_user([str(checkout / "scripts" / "test")]),
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
    # It stopped before setting up, linting or testing anything.
    assert sorted(path.name for path in checkout.iterdir()) == ["scripts"]
    assert "ruff" not in said and "mypy" not in said and "passed" not in said


def test_the_check_passes_quietly_where_everything_is_installed() -> None:
    result = subprocess.run(
        [str(REPO / "scripts" / "test-deps"), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# apt-get as a fresh Debian machine's: no package lists until `update`, then each package
# installs its programs (here: empty executables beside it on PATH).
FAKE_APT_GET = """#!/usr/bin/env bash
here=$(dirname "$0")
echo "apt-get $*" >>"$here/apt.log"
case "$1" in
  update) : >"$here/lists"; exit 0 ;;
  install) [ -e "$here/lists" ] || { echo "E: Unable to locate package" >&2; exit 100; } ;;
esac
for package in "$@"; do
  case "$package" in
    openssh-client) programs="ssh ssh-keygen" ;;
    etcd-server) programs=etcd ;;
    etcd-client) programs=etcdctl ;;
    util-linux) programs="unshare setpriv" ;;
    *) programs="$package" ;;
  esac
  for program in $programs; do
    printf '#!/bin/sh\\n' >"$here/$program" && /bin/chmod +x "$here/$program"
  done
done
"""


def test_as_root_the_test_command_installs_the_missing_packages_on_a_fresh_machine(
    bare_machine: tuple[Path, str],
) -> None:
    assert os.geteuid() == 0, "the tests run as root (scripts/test-deps says so otherwise)"
    checkout, bare_path = bare_machine
    bin_dir = Path(bare_path)
    (bin_dir / "apt-get").write_text(FAKE_APT_GET)
    (bin_dir / "apt-get").chmod(0o755)
    (bin_dir / "kubectl").write_text("#!/bin/sh\n")  # not a Debian package: already there
    (bin_dir / "kubectl").chmod(0o755)

    result = subprocess.run(
        [str(checkout / "scripts" / "test-deps")],
        env={"PATH": bare_path, "HOME": "/nonexistent", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    calls = (bin_dir / "apt.log").read_text().splitlines()
    assert calls[1] == "apt-get update -q"  # the first install found no package lists
    assert calls[0] == calls[2]
    installed = calls[2].split()
    for package in ("openssh-client", "etcd-server", "etcd-client", "sudo", "openssl"):
        assert package in installed
    assert "prometheus-alertmanager" in installed and "kubectl" not in installed
