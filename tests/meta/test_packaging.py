"""Test support is not product: the wheel and the Docker image carry kubegate's own packages
only, never testbed/ or bench/; and `kubegate demo` outside a checkout says it needs one."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).parents[2]
PRODUCT = {"bot", "commands", "approvals", "playbooks"}
TEST_SUPPORT = {"testbed", "bench", "tests"}
# What a checkout holds besides sources: not part of a fresh clone.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "*.db", "*.db-*"
)


def test_the_product_wheel_holds_kubegates_packages_and_no_test_support(tmp_path: Path) -> None:
    # A copy, so the build's own files (build/, *.egg-info) never land in the checkout.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCES)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr

    (wheel,) = tmp_path.glob("kubegate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert top_level == PRODUCT
    assert not [name for name in names if name.split("/")[0] in TEST_SUPPORT]
    assert "bot/cli.py" in names


def dockerfile_copy_sources() -> list[str]:
    """The host paths the Dockerfile's COPY lines bring into the image (not --from=stage)."""
    sources: list[str] = []
    lines = (REPO / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    for line in lines:
        words = shlex.split(line, comments=True)
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        arguments = [word for word in words[1:] if not word.startswith("--")]
        if any(word.startswith("--from") for word in words[1:]):
            continue
        sources.extend(arguments[:-1])
    return sources


def test_the_docker_image_copies_only_kubegates_packages_and_its_build_files() -> None:
    sources = {source.removeprefix("./").rstrip("/") for source in dockerfile_copy_sources()}
    assert sources == PRODUCT | {"requirements-runtime.lock", "pyproject.toml", "README.md"}
    assert not sources & TEST_SUPPORT
    assert "." not in sources  # a whole-context copy would bring the test support along


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: str) -> dict[str, str]:
    lines = (REPO / lock).read_text().splitlines()
    return {normalized(line.split("==")[0]): line for line in lines if "==" in line}


def kubegates_dependencies() -> set[str]:
    """Every distribution kubegate needs to run, from the installed packages' own metadata."""
    needed: set[str] = set()
    waiting = [Requirement(text) for text in importlib.metadata.requires("kubegate") or []]
    while waiting:
        requirement = waiting.pop()
        # An extra's requirements only count when that extra is asked for.
        extras = requirement.extras or {""}
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in extras
        ):
            continue
        name = normalized(requirement.name)
        if name in needed:
            continue
        needed.add(name)
        for text in importlib.metadata.requires(requirement.name) or []:
            inner = Requirement(text)
            if inner.marker and not any(inner.marker.evaluate({"extra": e}) for e in extras):
                continue
            inner.marker = None
            waiting.append(inner)
    return needed - {"pip"}  # sqlite-utils names pip; every venv has it


def test_the_image_installs_every_package_kubegate_needs_and_no_dev_tool() -> None:
    runtime, dev = pins("requirements-runtime.lock"), pins("requirements.lock")
    assert set(runtime) == kubegates_dependencies()
    assert not set(runtime) & set(dev), "pinned twice"
    assert {"pytest", "pytest-timeout", "ruff", "mypy"} <= set(dev)
    assert "-r requirements-runtime.lock" in (REPO / "requirements.lock").read_text()


def test_demo_outside_a_checkout_says_it_needs_one(tmp_path: Path) -> None:
    # kubegate as installed from its wheel: the checkout (and so testbed/) is not on the path.
    script = (
        "import sys\n"
        f"sys.path = [p for p in sys.path if p not in ({str(REPO)!r}, '')]\n"
        "from bot.cli import main\n"
        f"main(['demo', '--dir', {str(tmp_path / 'demo')!r}])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "kubegate demo needs a checkout of kubegate's repository" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo").exists()
