"""`python -m bench.upgrade`: a rolling upgrade of 20 workers at --max-unavailable 1 and 4,
end to end (signed Slack requests, approvals, SSH to the fleet), on a fresh testbed each.

Last line: JSON keyed `max_unavailable_1` and `max_unavailable_4`, each with the workers' wall
time, its lower bound (nodes ÷ N × the measured mean per-node time), their ratio, the most
nodes ever unschedulable, PDB violations, and the Slack API calls the job made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.app import serve
from bot.config import Settings
from testbed.up import Testbed, start_testbed

CHANNEL = "C0OPS"
TARGET = "v1.31.3"


def workload(workers: int) -> dict[str, Any]:
    names = ",".join(f"worker-{i}" for i in range(1, workers + 1))
    return {
        "readiness_delay": 0.2,
        "termination_delay": 0.2,
        "manifests": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "node-agent", "namespace": "kube-system"},
                "spec": {
                    "selector": {"matchLabels": {"app": "node-agent"}},
                    "template": {
                        "metadata": {"labels": {"app": "node-agent"}},
                        "spec": {
                            "containers": [{"name": "agent", "image": "agent:1"}],
                            "tolerations": [{"operator": "Exists"}],
                        },
                    },
                },
            },
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web",
                    "namespace": "bench",
                    "annotations": {"testbed.kubegate.io/initial-nodes": names},
                },
                "spec": {
                    "replicas": workers,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "web:1"}]},
                    },
                },
            },
        ],
    }


async def wait_until(condition: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.1)


def workers_step(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT started_at, finished_at, data, state FROM steps WHERE job_id = 1 AND name = 'upgrade-workers'"
        ).fetchone()
        state = conn.execute("SELECT state FROM jobs WHERE id = 1").fetchone()[0]
    started, finished = (datetime.fromisoformat(t) for t in row[:2])
    return {
        "seconds": (finished - started).total_seconds(),
        "data": json.loads(row[2]),
        "state": row[3],
        "job": state,
    }


async def one_run(
    max_unavailable: int,
    workers: int,
    directory: Path,
    *,
    control_planes: int = 1,
    target: str = TARGET,
) -> dict[str, Any]:
    testbed: Testbed = await start_testbed(
        directory,
        workers=workers,
        heartbeat_interval=5.0,
        control_planes=control_planes,
        apiserver_startup=1.0,
    )
    stop = asyncio.Event()
    running: list[asyncio.Task[None]] = []
    try:
        await testbed.apiserver.load_scenario(workload(workers))
        settings = Settings.model_validate(
            {
                "KUBEGATE_CONFIG": str(testbed.config_path),
                "KUBEGATE_DB": str(directory / "kubegate.db"),
                "KUBEGATE_PORT": 0,
            }
        )
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve(settings, ready=port.set_result, stop=stop))
        running.append(server)
        testbed.slack.app_url = f"http://127.0.0.1:{await port}/slack/events"
        slack = testbed.slack
        calls_before = sum(slack.calls.values())
        await slack.user("U0ALICE").slash(
            f"/kube upgrade cluster --to {target} --max-unavailable {max_unavailable}",
            channel=CHANNEL,
        )
        await wait_until(lambda: any("job #1" in m.shown for m in slack.messages(CHANNEL)), 60)
        root = next(m for m in slack.messages(CHANNEL) if "job #1" in m.shown)
        for approver in ("U0BOB", "U0CAROL"):
            await slack.user(approver).click(channel=CHANNEL, message_ts=root.ts, label="Approve")
        await wait_until(
            lambda: any(
                w in (slack.message(CHANNEL, root.ts) or root).shown
                for w in ("SUCCEEDED", "FAILED")
            ),
            900,
        )
        await asyncio.sleep(0.5)  # let the last updates land before counting
        job_calls = sum(slack.calls.values()) - calls_before
        step = workers_step(directory / "kubegate.db")
        per_node = list(step["data"]["done"].values())
        mean = sum(per_node) / len(per_node)
        bound = workers / max_unavailable * mean
        stats = testbed.apiserver.stats()
        figures = {
            "workers": workers,
            "wall_s": round(step["seconds"], 2),
            "per_node_s": round(mean, 2),
            "lower_bound_s": round(bound, 2),
            "ratio": round(step["seconds"] / bound, 3),
            "max_unschedulable": stats["max_unschedulable_nodes"],
            "pdb_violations": stats["pdb_violations"],
            "slack_calls_per_job": job_calls,
            "job_state": step["job"],
            "max_apiservers_down": stats["max_apiservers_down"],
            "etcd_quorum_lost": stats.get("etcd_quorum_lost", 0),
        }
        print(
            f"max-unavailable {max_unavailable}: {json.dumps(figures)}", file=sys.stderr, flush=True
        )
        return figures
    finally:
        stop.set()
        await asyncio.gather(*running)
        await testbed.stop()


async def main(workers: int, levels: list[int], *, minor_ha: bool) -> dict[str, Any]:
    results = {}
    for level in levels:
        with tempfile.TemporaryDirectory(prefix=f"bench-upgrade-{level}-") as scratch:
            results[f"max_unavailable_{level}"] = await one_run(level, workers, Path(scratch))
    if minor_ha:
        # Three control planes behind the load balancer, v1.31 -> v1.32 (package sources
        # switched per node), four workers at once.
        with tempfile.TemporaryDirectory(prefix="bench-upgrade-minor-ha-") as scratch:
            results["minor_ha"] = await one_run(
                4, workers, Path(scratch), control_planes=3, target="v1.32.0"
            )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.upgrade")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--levels", default="1,4", help="the --max-unavailable values to run")
    parser.add_argument(
        "--minor-ha", action="store_true", help="also the 3-control-plane v1.31 -> v1.32 run"
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x]
    figures = asyncio.run(main(args.workers, levels, minor_ha=args.minor_ha))
    print(json.dumps(figures))
    sys.exit(0 if all(f["job_state"] == "SUCCEEDED" for f in figures.values()) else 1)
