"""The two outside clients `bench.ssh_fanout` measures kubegate against: Ansible ad-hoc and the
OpenSSH client under `xargs -P`, each run as a subprocess against the fleet and timed whole.

Both check that every node answered; neither is allowed to write into the repository.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testbed.fleet import Fleet

SUBPROCESS_DEADLINE_S = 300.0


@dataclass
class WayResult:
    """How one way of fanning out went: its wall time and which nodes did not answer right."""

    seconds: float
    answered: int
    failures: list[str] = field(default_factory=list)


def ansible_executable() -> Path:
    """The venv's `ansible` (the `bench` extra pins ansible-core), else the one on PATH."""
    beside_python = Path(sys.executable).parent / "ansible"
    if beside_python.exists():
        return beside_python
    found = shutil.which("ansible")
    if found is None:
        raise FileNotFoundError(
            "ansible is not installed: pip install -e '.[bench]' (or -r requirements-bench.lock)"
        )
    return Path(found)


def ansible_inventory(fleet: Fleet) -> dict[str, object]:
    host_key_checking = (
        f"-o UserKnownHostsFile={shlex.quote(str(fleet.known_hosts_path))} "
        "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    )
    hosts = {
        name: {
            "ansible_host": node.address,
            "ansible_port": node.port,
            "ansible_user": fleet.user,
            "ansible_ssh_private_key_file": str(fleet.client_key_path),
        }
        for name, node in fleet.nodes.items()
    }
    common = {
        # The fleet nodes are this machine, so its Python is theirs.
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": host_key_checking,
    }
    return {"all": {"hosts": hosts, "vars": common}}


def ansible_environment(scratch: Path, remote_temp: Path) -> dict[str, str]:
    """Ansible's settings, all pointing into `scratch`: no ~/.ansible, no ansible.cfg from the
    working directory, no stray ANSIBLE_* from the caller's shell."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    config = scratch / "ansible.cfg"
    config.write_text("[defaults]\n")
    environment |= {
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOME": str(scratch / "home"),
        "ANSIBLE_LOCAL_TEMP": str(scratch / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(remote_temp),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(scratch / "cp"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }
    return environment


async def ansible_fanout(fleet: Fleet, command: str, *, release: str) -> WayResult:
    """`ansible all -m shell -a COMMAND -f N`; per-node results read back from `--tree`."""
    ansible = ansible_executable()
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-ansible-") as directory:
        scratch = Path(directory)
        # Remote temp lives on the nodes, i.e. here, and is made by the fleet's own account.
        scratch.chmod(0o755)
        shared = scratch / "remote"
        shared.mkdir(mode=0o1777)
        shared.chmod(0o1777)
        inventory = scratch / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(ansible_inventory(fleet)))
        tree = scratch / "tree"
        argv = [
            str(ansible),
            "all",
            "-i",
            str(inventory),
            "-m",
            "shell",
            "-a",
            command,
            "-f",
            str(len(fleet.nodes)),
            "-o",
            "--tree",
            str(tree),
        ]
        environment = ansible_environment(scratch, shared / "ansible-tmp")
        seconds, code, output = await _timed(argv, cwd=scratch, env=environment)
        node_failures = _ansible_failures(fleet, tree, release)
    failures = node_failures + ([f"ansible exited {code}: {output[-2000:]}"] if code else [])
    return WayResult(seconds, len(fleet.nodes) - len(node_failures), failures)


def _ansible_failures(fleet: Fleet, tree: Path, release: str) -> list[str]:
    failures = []
    for name in fleet.nodes:
        try:
            result = json.loads((tree / name).read_text())
        except (OSError, json.JSONDecodeError) as error:
            failures.append(f"{name}: no ansible result ({error})")
            continue
        if result.get("rc") != 0 or str(result.get("stdout", "")).strip() != release:
            failures.append(f"{name}: rc={result.get('rc')} {result.get('msg', '')!s:.300}")
    return failures


def openssh_argv(fleet: Fleet, options: Sequence[str] = ()) -> list[str]:
    return [
        "xargs",
        "-P",
        str(len(fleet.nodes)),
        "-L",
        "1",
        "ssh",
        "-i",
        str(fleet.client_key_path),
        "-F",
        "/dev/null",
        "-o",
        f"UserKnownHostsFile={fleet.known_hosts_path}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=10",
        *options,
    ]


def openssh_lines(fleet: Fleet, command: str) -> str:
    """One xargs input line per node; xargs honours the quotes, so each becomes
    `ssh … -p PORT user@addr 'COMMAND'`."""
    return "".join(
        f"-p {node.port} {fleet.user}@{node.address} '{command}'\n" for node in fleet.nodes.values()
    )


async def openssh_fanout(
    fleet: Fleet, command: str, *, release: str, options: Sequence[str] = ()
) -> WayResult:
    """`xargs -P N ssh [options] …`: xargs exits 0 only if every ssh did; each prints one line."""
    if "'" in command:
        raise ValueError("the command is quoted for xargs with single quotes")
    stdin = openssh_lines(fleet, command).encode()
    argv = openssh_argv(fleet, options)
    seconds, code, output = await _timed(argv, stdin=stdin, split_stderr=True)
    lines = output.splitlines()
    releases = [line for line in lines if line.strip() == release]
    failures = [] if code == 0 else [f"xargs exited {code}"]
    failures += [f"unexpected output: {line}" for line in lines if line.strip() != release]
    # ssh prints nothing to stdout when it cannot log in, so release lines are answered nodes.
    return WayResult(seconds, len(releases), failures)


async def _timed(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    split_stderr: bool = False,
) -> tuple[float, int, str]:
    """Run to completion; (wall seconds from spawn to exit, exit code, stdout[+stderr])."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if split_stderr else asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(SUBPROCESS_DEADLINE_S):
            out, err = await process.communicate(stdin)
    except TimeoutError:
        process.kill()
        await process.wait()
        return time.monotonic() - started, -1, f"{argv[0]} did not finish in time"
    seconds = time.monotonic() - started
    if split_stderr and err:
        sys.stderr.write(err.decode(errors="replace"))
    assert process.returncode is not None
    return seconds, process.returncode, out.decode(errors="replace")
