"""`python -m testbed up --dir DIR`: the stand-in world, running until stopped.

Starts the fake kube-apiserver and the Slack emulator, then writes DIR/testbed.json (how to
reach them) and DIR/kubegate.yaml (a complete kubegate config for this testbed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testbed.apiserver import FakeApiServer, NodeSpec
from testbed.slack import SlackEmulator

CHANNEL = "C0OPS"
USERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol", "U0DAVE": "dave"}
ROLES = {"sre": ["U0ALICE", "U0BOB"], "lead": ["U0CAROL"]}


def kubegate_config(*, kubeconfig: Path, emulator: SlackEmulator) -> dict[str, Any]:
    return {
        "clusters": [
            {
                "name": "testbed",
                "context": "testbed",
                "kubeconfig": str(kubeconfig),
                "channels": [CHANNEL],
            }
        ],
        "roles": ROLES,
        "policy": [
            {
                "verbs": [
                    "cordon",
                    "uncordon",
                    "drain",
                    "taint",
                    "untaint",
                    "scale",
                    "backup",
                    "cancel",
                    "retry",
                ],
                "requesters": ["sre", "lead"],
                "approvals": 1,
                "approvers": ["sre", "lead"],
            },
            {
                "verbs": ["upgrade", "provision", "rotate"],
                "requesters": ["sre", "lead"],
                "approvals": 2,
                "approvers": ["sre", "lead"],
            },
        ],
        "windows": {"approval": "30m", "execution": "2h"},
        "slack": {
            "bot_token": emulator.bot_token,
            "signing_secret": emulator.signing_secret,
            "api_url": emulator.api_url,
        },
        "users": USERS,
    }


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class

    directory: Path
    apiserver: FakeApiServer
    slack: SlackEmulator
    kubeconfig: Path
    config_path: Path

    def description(self) -> dict[str, Any]:
        return {
            "kubeconfig": str(self.kubeconfig),
            "context": "testbed",
            "apiserver_url": self.apiserver.url,
            "apiserver_ca": str(self.apiserver.ca_path),
            "slack_api_url": self.slack.api_url,
            "slack_url": self.slack.url,
            "slack_signing_secret": self.slack.signing_secret,
            "slack_bot_token": self.slack.bot_token,
            "channel": CHANNEL,
            "users": USERS,
            "kubegate_config": str(self.config_path),
            "pid": os.getpid(),
        }

    async def stop(self) -> None:
        await self.slack.stop()
        await self.apiserver.stop()


async def start_testbed(
    directory: Path,
    *,
    workers: int = 3,
    heartbeat_interval: float = 5.0,
    app_url: str | None = None,
) -> Testbed:
    directory.mkdir(parents=True, exist_ok=True)
    nodes = [NodeSpec(name="cp-1", role="control-plane")]
    nodes += [NodeSpec(name=f"worker-{i}", role="worker") for i in range(1, workers + 1)]
    apiserver = FakeApiServer(
        workdir=directory / "apiserver", nodes=nodes, heartbeat_interval=heartbeat_interval
    )
    await apiserver.start()
    slack = SlackEmulator(users=USERS)
    await slack.start()
    if app_url is not None:
        slack.app_url = app_url
    kubeconfig = apiserver.write_kubeconfig(directory / "kubeconfig", context="testbed")
    config_path = directory / "kubegate.yaml"
    config_path.write_text(
        yaml.safe_dump(kubegate_config(kubeconfig=kubeconfig, emulator=slack), sort_keys=False)
    )
    config_path.chmod(0o600)  # it holds the Slack token and signing secret
    testbed = Testbed(directory, apiserver, slack, kubeconfig, config_path)
    description = directory / "testbed.json"
    partial = description.with_suffix(".json.tmp")
    partial.write_text(json.dumps(testbed.description(), indent=2))
    partial.replace(description)  # readers never see half a file
    return testbed


async def run_until_stopped(args: argparse.Namespace) -> None:
    testbed = await start_testbed(
        Path(args.dir).resolve(),
        workers=args.workers,
        heartbeat_interval=args.heartbeat,
        app_url=args.app_url,
    )
    print(f"testbed up: {testbed.directory / 'testbed.json'}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await testbed.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", help="start the testbed and write DIR/testbed.json and DIR/kubegate.yaml"
    )
    up.add_argument(
        "--dir", required=True, help="where to write testbed.json, kubegate.yaml, certs"
    )
    up.add_argument("--workers", type=int, default=3, help="number of worker nodes (default 3)")
    up.add_argument("--heartbeat", type=float, default=5.0, help="node heartbeat interval, seconds")
    up.add_argument(
        "--app-url", default=None, help="kubegate's /slack/events URL, for signed requests"
    )
    args = parser.parse_args(argv)
    asyncio.run(run_until_stopped(args))
