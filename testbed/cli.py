"""`python -m testbed up|fault`: start the testbed and keep it running until SIGTERM/SIGINT,
or switch a fault in one that runs (testbed/faults/)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from testbed import faults
from testbed.up import start_testbed


async def run_until_stopped(args: argparse.Namespace) -> None:
    testbed = await start_testbed(
        Path(args.dir).resolve(),
        workers=args.workers,
        heartbeat_interval=args.heartbeat,
        app_url=args.app_url,
        fleet=not args.no_fleet,
        spare=args.spare,
        version=args.version,
        control_planes=args.control_planes,
        apiserver_startup=args.apiserver_startup,
        etcd_version=args.etcd_version,
        load_balancer=args.load_balancer,
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
    up.add_argument(
        "--no-fleet", action="store_true", help="no SSH fleet, Vault or etcd (API only)"
    )
    up.add_argument(
        "--spare", type=int, default=0, help="extra hosts with sshd but no Node, to provision"
    )
    up.add_argument("--version", default="v1.31.2", help="Kubernetes version of the cluster")
    up.add_argument(
        "--control-planes",
        type=int,
        default=1,
        help="control planes cp-1..cp-N, each with its API server and etcd member (default 1)",
    )
    up.add_argument(
        "--load-balancer",
        action="store_true",
        help="a load balancer (controlPlaneEndpoint) even with one control plane, so more can join",
    )
    up.add_argument(
        "--apiserver-startup",
        type=float,
        default=2.0,
        help="seconds an API server takes to serve after its manifest is back (default 2)",
    )
    up.add_argument(
        "--etcd-version",
        default="3.6",
        help="the etcd image's version: from 3.6 `etcdctl snapshot status` is gone (default 3.6)",
    )
    faults.add_command(sub)
    args = parser.parse_args(argv)
    if args.command == "fault":
        faults.run_command(args)
        return
    asyncio.run(run_until_stopped(args))
