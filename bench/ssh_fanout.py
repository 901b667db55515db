"""`python -m bench.ssh_fanout`: one command on N nodes of the testbed's real-OpenSSH fleet, every
way in one run — kubegate's executor cold (connecting first) and warm (kept connections), Ansible
ad-hoc, and the OpenSSH client under `xargs -P` (as is, and with kubegate's key exchange) — each
checked that every node answered.

Progress goes to stderr; the last line of stdout is one JSON object with the figures. The exit
status is 1 if any way left a node unanswered (the figures of a failed way mean nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncssh

from bench.fanout_clients import WayResult, ansible_fanout, openssh_fanout
from playbooks.ssh import CommandResult, Credentials, SshError, SshExecutor, SshTarget
from testbed.fleet import Fleet

COMMAND = "uname -r; sleep 0.2"
COMMAND_SECONDS = 0.2
WAYS = ("kubegate", "openssh", "openssh_curve25519", "ansible")
# OpenSSH 9.2 negotiates sntrup761x25519-sha512 with its own sshd; asyncssh (no sntrup761) gets
# curve25519-sha256. The extra way shows how much of OpenSSH's time is that key exchange.
CURVE25519_ONLY = ("-o", "KexAlgorithms=curve25519-sha256")
MAX_NODES = 254  # one loopback address each: 127.0.10.1 … 127.0.10.254


def fleet_specs(nodes: int) -> list[tuple[str, str, str]]:
    """(name, address, role) of `nodes` hosts, each on its own loopback address."""
    if not 1 <= nodes <= MAX_NODES:
        raise ValueError(f"nodes must be between 1 and {MAX_NODES}")
    return [(f"node-{i:02d}", f"127.0.10.{i}", "worker") for i in range(1, nodes + 1)]


def ssh_targets(fleet: Fleet) -> list[SshTarget]:
    return [
        SshTarget(node=name, host=node.address, port=node.port, user=fleet.user, sudo=False)
        for name, node in fleet.nodes.items()
    ]


def checked(results: Sequence[CommandResult | SshError], seconds: float, release: str) -> WayResult:
    """A node answered if its command exited 0 and printed this machine's kernel release."""
    failures = []
    for result in results:
        if isinstance(result, SshError):
            failures.append(f"{result.node}: {result}")
        elif not result.ok or result.stdout.strip() != release:
            failures.append(f"{result.node}: exit {result.exit_status}: {result.tail(3)}")
    return WayResult(seconds, len(results) - len(failures), failures)


async def kubegate_fanout(fleet: Fleet, *, release: str) -> tuple[WayResult, WayResult]:
    """Cold: a new executor connects to every node and runs the command; warm: the same
    executor runs it again over the connections it kept."""
    executor = SshExecutor(
        known_hosts=fleet.known_hosts_path.read_text(),
        credentials=Credentials(asyncssh.import_private_key(fleet.client_key_path.read_text())),
    )
    targets, argv = ssh_targets(fleet), ["sh", "-c", COMMAND]
    try:
        started = time.monotonic()
        results = await executor.run_many(targets, argv, timeout=60)
        cold = checked(results, time.monotonic() - started, release)
        started = time.monotonic()
        results = await executor.run_many(targets, argv, timeout=60)
        warm = checked(results, time.monotonic() - started, release)
    finally:
        await executor.close()
    return cold, warm


async def measure(fleet: Fleet, ways: Sequence[str], release: str) -> dict[str, WayResult]:
    """Ansible last: its ControlPersist masters outlive it and would share the sshds' time."""
    outcomes: dict[str, WayResult] = {}
    if "kubegate" in ways:
        outcomes["kubegate_cold"], outcomes["kubegate_warm"] = await kubegate_fanout(
            fleet, release=release
        )
    if "openssh" in ways:
        outcomes["openssh"] = await openssh_fanout(fleet, COMMAND, release=release)
    if "openssh_curve25519" in ways:
        outcomes["openssh_curve25519"] = await openssh_fanout(
            fleet, COMMAND, release=release, options=CURVE25519_ONLY
        )
    if "ansible" in ways:
        outcomes["ansible"] = await ansible_fanout(fleet, COMMAND, release=release)
    for way, outcome in outcomes.items():
        status = "ok" if not outcome.failures else f"{len(outcome.failures)} FAILED"
        log(
            f"{way}: {outcome.seconds:.3f} s, {outcome.answered}/{len(fleet.nodes)} nodes, {status}"
        )
        for failure in outcome.failures[:10]:
            log(f"  {failure}")
    return outcomes


def report(nodes: int, outcomes: dict[str, WayResult], context: dict[str, Any]) -> dict[str, Any]:
    """The JSON line: `<way>_s` wall seconds (null if not run), `<way>_answered` node counts."""
    figures: dict[str, Any] = {"nodes": nodes}
    for way in ("kubegate_cold", "kubegate_warm", "ansible", "openssh", "openssh_curve25519"):
        outcome = outcomes.get(way)
        figures[f"{way}_s"] = round(outcome.seconds, 3) if outcome else None
    cold, ansible = figures["kubegate_cold_s"], figures["ansible_s"]
    figures["ratio"] = round(cold / ansible, 4) if cold is not None and ansible else None
    figures["warm_over_command"] = (
        round(figures["kubegate_warm_s"] / COMMAND_SECONDS, 2)
        if figures["kubegate_warm_s"] is not None
        else None
    )
    for way, outcome in outcomes.items():
        figures[f"{way}_answered"] = outcome.answered
    figures["all_answered"] = all(not o.failures for o in outcomes.values())
    return (
        figures
        | {"command": COMMAND, "kernel": os.uname().release, "cpus": os.cpu_count()}
        | context
    )


async def run_benchmark(*, nodes: int, ways: Sequence[str], workdir: Path) -> dict[str, Any]:
    release = os.uname().release
    fleet = Fleet(workdir / "fleet", fleet_specs(nodes))
    started = time.monotonic()
    log(f"starting {nodes} sshd nodes under {workdir}")
    await fleet.start()
    # Other work on the machine moves every figure; the load says how much to trust a run.
    context = {
        "fleet_start_s": round(time.monotonic() - started, 3),
        "load_1m_before": round(os.getloadavg()[0], 2),
    }
    try:
        outcomes = await measure(fleet, ways, release)
    finally:
        await fleet.stop()
    context["load_1m_after"] = round(os.getloadavg()[0], 2)
    return report(nodes, outcomes, context)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ssh_fanout", description=__doc__)
    parser.add_argument("--nodes", type=int, default=50, help="fleet size (default 50)")
    parser.add_argument(
        "--ways",
        default=",".join(WAYS),
        help=f"comma-separated subset of {','.join(WAYS)} (default all)",
    )
    args = parser.parse_args(argv)
    ways = [way for way in args.ways.split(",") if way]
    unknown = sorted(set(ways) - set(WAYS))
    if unknown:
        parser.error(f"unknown ways: {', '.join(unknown)}; choose from {', '.join(WAYS)}")
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-fanout-") as directory:
        figures = asyncio.run(run_benchmark(nodes=args.nodes, ways=ways, workdir=Path(directory)))
    print(json.dumps(figures), flush=True)
    return 0 if figures["all_answered"] else 1


if __name__ == "__main__":
    sys.exit(main())
