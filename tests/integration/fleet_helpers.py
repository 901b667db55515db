"""Shared by the fleet and etcd tests: a fake apiserver with its fleet, and the real ssh client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from testbed.apiserver import FakeApiServer
from testbed.fleet import Fleet, apiserver_nodes

DEADLINE_SECONDS = 10.0


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


def fleet_nodes(apiserver: FakeApiServer) -> list[tuple[str, str, str]]:
    return apiserver_nodes(apiserver)


async def openssh(
    fleet: Fleet,
    node: str,
    command: str,
    *,
    known_hosts: Path | None = None,
    key: Path | None = None,
) -> Ran:
    target = fleet.nodes[node]
    options = [
        f"UserKnownHostsFile={known_hosts or fleet.known_hosts_path}",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        "ConnectTimeout=5",
    ]
    process = await asyncio.create_subprocess_exec(
        "ssh",
        "-i",
        str(key or fleet.client_key_path),
        *[word for option in options for word in ("-o", option)],
        "-F",
        "/dev/null",
        "-p",
        str(target.port),
        f"{fleet.user}@{target.address}",
        command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE_SECONDS)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())
