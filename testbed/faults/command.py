"""`python -m testbed fault --dir DIR NAME [ARGS]`: ask the running testbed for a fault."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from testbed.faults.base import FaultError
from testbed.faults.switches import fault_list


def send_fault(directory: Path, name: str, args: list[str]) -> str:
    """What the running testbed in `directory` says it did, or FaultError."""
    description = directory / "testbed.json"
    try:
        endpoint = json.loads(description.read_text())["faults"]
    except (OSError, ValueError, KeyError):
        raise FaultError(f"no running testbed described in {description}") from None
    request = urllib.request.Request(
        endpoint["url"] + "/faults",
        data=json.dumps({"name": name, "args": args}).encode(),
        headers={"Content-Type": "application/json", "X-Testbed-Token": endpoint["token"]},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise FaultError(json.loads(error.read() or b"{}").get("error", str(error))) from None
    except OSError as error:
        raise FaultError(f"the testbed at {endpoint['url']} does not answer: {error}") from None
    return str(answer["message"])


def add_command(sub: Any) -> None:
    """The `fault` subcommand of `python -m testbed`."""
    fault = sub.add_parser(
        "fault",
        help="switch a fault on or off in a running testbed",
        description="faults:\n" + fault_list(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fault.add_argument("--dir", required=True, help="the directory given to `up`")
    fault.add_argument("name", help="the fault, e.g. etcd-member-down")
    fault.add_argument("args", nargs=argparse.REMAINDER, help="its arguments, e.g. cp-2")


def run_command(args: argparse.Namespace) -> None:
    try:
        print(send_fault(Path(args.dir).resolve(), args.name, list(args.args)))
    except FaultError as error:
        print(f"testbed fault: {error}", file=sys.stderr)
        sys.exit(2)
