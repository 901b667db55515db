"""`python -m bench.upgrade`: a rolling upgrade of 20 workers at --max-unavailable 1 and 4,
end to end (signed Slack requests, approvals, SSH to the fleet), on a fresh testbed each.

Last line: JSON keyed `max_unavailable_1` and `max_unavailable_4`, each with the workers' wall
time, its lower bound (nodes ÷ N × the measured mean per-node time), their ratio, the most
nodes ever unschedulable, PDB violations, and the Slack API calls the job made. With
`--minor-ha`, also `minor_ha`: three control planes, v1.31 -> v1.32, N = 4, and (unless
`--peer none`) the same upgrade by the kubespray-style Ansible playbook in bench/ansible/ on a
fresh testbed of its own: `ansible_s`, `ratio_vs_ansible` and Ansible's own safety counters.
`--peer-pace fast` runs the peer without kubespray's coarse polls (`ansible_pace` says which).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.ansible import peer
from bot.app import serve
from bot.config import Settings
from testbed.fleet import sshd
from testbed.up import Testbed, start_testbed

CHANNEL = "C0OPS"
TARGET = "v1.31.3"
# minor_ha's `web` PDB (both kubegate and the Ansible peer): 5 of 20 replicas may be down, more
# than the 4 nodes drained at once, so a drain waits on it only while moved pods get Ready.
MINOR_HA_PDB = "25%"


def workload(workers: int, *, budget: str | None = None) -> dict[str, Any]:
    """A DaemonSet on every node and one `web` replica per worker; with `budget`, a PDB on web
    with that maxUnavailable, so `pdb_violations` counts something either tool could break."""
    names = ",".join(f"worker-{i}" for i in range(1, workers + 1))
    scenario: dict[str, Any] = {
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
    if budget is not None:
        scenario["manifests"].append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "web", "namespace": "bench"},
                "spec": {"maxUnavailable": budget, "selector": {"matchLabels": {"app": "web"}}},
            }
        )
    return scenario


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


def step_seconds(db: Path) -> dict[str, float]:
    """Each step of job 1 that ran, in order, and its wall seconds (from the store)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT name, started_at, finished_at FROM steps WHERE job_id = 1 "
            "AND started_at IS NOT NULL AND finished_at IS NOT NULL ORDER BY started_at"
        ).fetchall()
    return {
        name: (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        for name, start, end in rows
    }


def job_seconds(db: Path) -> float:
    """The whole job as it ran: first step started to last step finished (the approvals before
    it are people's time, not the upgrade's)."""
    with sqlite3.connect(db) as conn:
        first, last = conn.execute(
            "SELECT MIN(started_at), MAX(finished_at) FROM steps WHERE job_id = 1"
        ).fetchone()
    return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


@contextlib.asynccontextmanager
async def fresh_testbed(
    directory: Path, workers: int, *, control_planes: int, budget: str | None
) -> AsyncIterator[Testbed]:
    """The same world for kubegate and its peer: a fresh testbed with the bench's workload."""
    testbed: Testbed = await start_testbed(
        directory,
        workers=workers,
        heartbeat_interval=5.0,
        control_planes=control_planes,
        apiserver_startup=1.0,
    )
    try:
        await testbed.apiserver.load_scenario(workload(workers, budget=budget))
        yield testbed
    finally:
        await testbed.stop()


async def one_run(
    max_unavailable: int,
    workers: int,
    directory: Path,
    *,
    control_planes: int = 1,
    target: str = TARGET,
    budget: str | None = None,
) -> dict[str, Any]:
    async with fresh_testbed(
        directory, workers, control_planes=control_planes, budget=budget
    ) as testbed:
        return await kubegate_run(testbed, max_unavailable, workers, directory, target=target)


async def kubegate_run(
    testbed: Testbed, max_unavailable: int, workers: int, directory: Path, *, target: str
) -> dict[str, Any]:
    stop = asyncio.Event()
    running: list[asyncio.Task[None]] = []
    try:
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
        calls_before = sum(testbed.slack.calls.values())
        # Other work on the machine moves every figure; the load says how much to trust a run.
        load_before = os.getloadavg()[0]
        await upgrade_through_slack(testbed, max_unavailable, target)
        load_after = os.getloadavg()[0]
        await asyncio.sleep(0.5)  # let the last updates land before counting
        job_calls = sum(testbed.slack.calls.values()) - calls_before
    finally:
        stop.set()
        await asyncio.gather(*running)
    figures = kubegate_figures(testbed, max_unavailable, workers, directory / "kubegate.db")
    figures["slack_calls_per_job"] = job_calls
    figures["problems"] = fleet_problems(testbed, target)
    figures["not_ready_at_end"] = len(not_ready(testbed))
    figures["load_1m_before"], figures["load_1m_after"] = (
        round(load_before, 2),
        round(load_after, 2),
    )
    print(f"max-unavailable {max_unavailable}: {json.dumps(figures)}", file=sys.stderr, flush=True)
    return figures


async def upgrade_through_slack(testbed: Testbed, max_unavailable: int, target: str) -> None:
    """Alice asks, Bob and Carol approve; returns when the job's root message says it ended."""
    slack = testbed.slack
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
            w in (slack.message(CHANNEL, root.ts) or root).shown for w in ("SUCCEEDED", "FAILED")
        ),
        900,
    )


def kubegate_figures(
    testbed: Testbed, max_unavailable: int, workers: int, db: Path
) -> dict[str, Any]:
    step = workers_step(db)
    per_node = list(step["data"]["done"].values())
    mean = sum(per_node) / len(per_node)
    bound = workers / max_unavailable * mean
    stats = testbed.apiserver.stats()
    return {
        "workers": workers,
        "wall_s": round(step["seconds"], 2),
        "per_node_s": round(mean, 2),
        "lower_bound_s": round(bound, 2),
        "ratio": round(step["seconds"] / bound, 3),
        "max_unschedulable": stats["max_unschedulable_nodes"],
        "pdb_violations": stats["pdb_violations"],
        "job_state": step["job"],
        "max_apiservers_down": stats["max_apiservers_down"],
        "etcd_quorum_lost": stats.get("etcd_quorum_lost", 0),
        # The whole job (every step: etcd snapshot, control planes, workers), and each step.
        "kubegate_s": round(job_seconds(db), 2),
        "kubegate_steps_s": {name: round(s, 2) for name, s in step_seconds(db).items()},
    }


# The per-node order every upgrade here must keep (kubeadm's upgrade guide): the kubeadm
# package, then `kubeadm upgrade apply|node`, then the kubelet package, then its restart.
DOCUMENTED_ORDER = ("kubeadm package", "kubeadm upgrade", "kubelet package", "kubelet restart")


def not_ready(testbed: Testbed) -> list[str]:
    """Nodes whose Ready condition is not True now (a kubelet restarted but not back yet)."""
    return [
        node["metadata"]["name"]
        for node in testbed.apiserver.objects.list("v1", "nodes")
        if not any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node["status"].get("conditions", [])
        )
    ]


def documented_step(argv: list[str]) -> str | None:
    """Which step of DOCUMENTED_ORDER a shim call is, if any."""
    words = [Path(argv[0]).name, *argv[1:]]
    if words[:2] == ["apt-get", "install"]:
        packages = {word.split("=")[0] for word in words[2:] if "=" in word}
        if "kubeadm" in packages:
            return "kubeadm package"
        if "kubelet" in packages:
            return "kubelet package"
    if words[:3] in (["kubeadm", "upgrade", "apply"], ["kubeadm", "upgrade", "node"]):
        return "kubeadm upgrade"
    if words[:3] == ["systemctl", "restart", "kubelet"]:
        return "kubelet restart"
    return None


def fleet_problems(testbed: Testbed, target: str) -> list[str]:
    """What an operator would find wrong after the upgrade, whoever ran it: a node's kubelet not
    at the target or the node still cordoned, an apt source not naming the target's minor, or
    the shims' call log out of the documented order."""
    problems = []
    minor = ".".join(target.split(".")[:2])
    for node in testbed.apiserver.objects.list("v1", "nodes"):
        name = node["metadata"]["name"]
        kubelet = node["status"]["nodeInfo"]["kubeletVersion"]
        if kubelet != target:
            problems.append(f"{name}: kubelet {kubelet}")
        if node.get("spec", {}).get("unschedulable"):
            problems.append(f"{name}: still cordoned")
    for name, fleet_node in testbed.fleet.nodes.items():
        source = fleet_node.state_dir / "root/etc/apt/sources.list.d/kubernetes.list"
        if f"/{minor}/deb/" not in source.read_text():
            problems.append(f"{name}: apt source {source.read_text().strip()!r}")
        steps = [documented_step(call.argv) for call in testbed.fleet.calls(name)]
        first = [steps.index(step) if step in steps else -1 for step in DOCUMENTED_ORDER]
        if -1 in first or first != sorted(first):
            order = dict(zip(DOCUMENTED_ORDER, first, strict=True))
            problems.append(f"{name}: calls out of the documented order {order}")
    return problems


async def ansible_run(
    serial: int,
    workers: int,
    directory: Path,
    *,
    control_planes: int,
    target: str,
    budget: str | None,
    pace: str,
) -> dict[str, Any]:
    """The peer: bench/ansible/upgrade-cluster.yml on a fresh testbed with the same workload."""
    if not sshd.can_use_mount_namespaces():
        # Ansible's file modules write the real paths (/etc/apt/...): only in the node's own
        # mount namespace are those the node's and not this machine's.
        raise peer.PeerError("the Ansible peer needs root with mount namespaces (see README)")
    async with fresh_testbed(
        directory, workers, control_planes=control_planes, budget=budget
    ) as testbed:
        description = json.loads((directory / "testbed.json").read_text())
        with tempfile.TemporaryDirectory(prefix="bench-upgrade-ansible-") as scratch:
            run = await peer.run_upgrade(
                description, version=target, serial=serial, scratch=Path(scratch), pace=pace
            )
        stats = testbed.apiserver.stats()
        unready = not_ready(testbed)
        problems = fleet_problems(testbed, target)
    if not run.ok:
        print(run.output[-6000:], file=sys.stderr, flush=True)
    figures = peer.figures(run, stats, not_ready=len(unready), problems=problems, pace=pace)
    print(f"ansible peer: {json.dumps(figures)}", file=sys.stderr, flush=True)
    return figures


async def main(
    workers: int, levels: list[int], *, minor_ha: bool, peer_tool: str, peer_pace: str
) -> dict[str, Any]:
    results = {}
    for level in levels:
        with tempfile.TemporaryDirectory(prefix=f"bench-upgrade-{level}-") as scratch:
            results[f"max_unavailable_{level}"] = await one_run(level, workers, Path(scratch))
    if minor_ha:
        # Three control planes behind the load balancer, v1.31 -> v1.32 (package sources
        # switched per node), four workers at once.
        with tempfile.TemporaryDirectory(prefix="bench-upgrade-minor-ha-") as scratch:
            results["minor_ha"] = await one_run(
                4, workers, Path(scratch), control_planes=3, target="v1.32.0", budget=MINOR_HA_PDB
            )
        if peer_tool == "ansible":
            with tempfile.TemporaryDirectory(prefix="bench-upgrade-minor-ha-ansible-") as scratch:
                ansible = await ansible_run(
                    4,
                    workers,
                    Path(scratch),
                    control_planes=3,
                    target="v1.32.0",
                    budget=MINOR_HA_PDB,
                    pace=peer_pace,
                )
            results["minor_ha"] |= peer.compared(results["minor_ha"], ansible)
    return results


def succeeded(figures: dict[str, Any]) -> bool:
    return all(
        f["job_state"] == "SUCCEEDED" and not f["problems"] and f.get("ansible_ok", True)
        for f in figures.values()
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.upgrade")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--levels", default="1,4", help="the --max-unavailable values to run")
    parser.add_argument(
        "--minor-ha", action="store_true", help="also the 3-control-plane v1.31 -> v1.32 run"
    )
    parser.add_argument(
        "--peer",
        choices=("ansible", "none"),
        default="ansible",
        help="with --minor-ha: the same upgrade by bench/ansible's playbook (default), or none",
    )
    parser.add_argument(
        "--peer-pace",
        choices=tuple(peer.PACES),
        default="kubespray",
        help="the peer's polls: kubespray's own (drain under async, poll 15 s; /healthz every "
        "5 s), or fast (drain in the foreground, /healthz every 1 s)",
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x]
    figures = asyncio.run(
        main(
            args.workers,
            levels,
            minor_ha=args.minor_ha,
            peer_tool=args.peer,
            peer_pace=args.peer_pace,
        )
    )
    print(json.dumps(figures))
    sys.exit(0 if succeeded(figures) else 1)
