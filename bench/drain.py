"""`python -m bench.drain`: kubegate's drain against `kubectl drain` on the same scenario.

A node with 60 pods, a third behind PDBs (maxUnavailable: 1), ~1 s termination and readiness
delays. Each tool drains worker-1 on a fresh testbed; the last line printed is JSON with
`kubegate_s`, `kubectl_s`, `ratio` and `pdb_violations` (the sum over both runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from commands import DrainCommand, parse_command
from playbooks import ClusterHandle, KubeApi, StepContext
from playbooks.base import steps_of
from playbooks.drain import DrainPlaybook
from playbooks.pods import pod_view
from testbed.up import Testbed, start_testbed

SCENARIO = "drain-bench"
NODE = "worker-1"


async def fresh_testbed(directory: Path) -> Testbed:
    testbed = await start_testbed(directory, workers=3, heartbeat_interval=5.0, fleet=False)
    await testbed.apiserver.load_scenario(SCENARIO)
    return testbed


async def nothing_to_say(_: str) -> None:
    return None


async def drain_with_kubegate(testbed: Testbed) -> float:
    """The playbook's own steps, as the engine runs them (without chat and store around them)."""
    kube = await KubeApi.connect(kubeconfig=testbed.kubeconfig, context="testbed")
    cluster = ClusterHandle(name="testbed", kube=kube)
    command = parse_command(f"drain {NODE} --delete-emptydir-data --timeout 10m")
    assert isinstance(command, DrainCommand)
    playbook = DrainPlaybook()
    try:
        started = time.monotonic()
        plan = await playbook.plan(command, cluster)
        ctx = StepContext(cluster=cluster, plan=plan, job_id=0, results={}, say=nothing_to_say)
        for step in steps_of(plan):
            result = await step.run(ctx)
            if not result.ok:
                raise RuntimeError(f"kubegate's drain failed at {step.title}: {result.summary}")
            ctx.results[step.name] = result
        return time.monotonic() - started
    finally:
        await kube.close()


async def drain_with_kubectl(testbed: Testbed, home: Path) -> float:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(testbed.kubeconfig),
        "--cache-dir",
        str(home / "cache"),
        "drain",
        NODE,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=10m",
        env={**os.environ, "HOME": str(home)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"kubectl drain failed:\n{output.decode()[-2000:]}")
    return time.monotonic() - started


def left_on_node(testbed: Testbed) -> list[str]:
    """Pods still on the node that a drain should have moved (not DaemonSet, not mirror)."""
    pods = [pod_view(p) for p in testbed.apiserver.objects.list("v1", "pods")]
    return [
        p.key
        for p in pods
        if p.labels is not None
        and not p.mirror
        and p.owner_kind != "DaemonSet"
        and _node_of(testbed, p.namespace, p.name) == NODE
    ]


def _node_of(testbed: Testbed, namespace: str, name: str) -> str | None:
    pod = testbed.apiserver.objects.get("v1", "pods", namespace, name)
    node = (pod or {}).get("spec", {}).get("nodeName")
    return str(node) if node else None


async def one_run(name: str, directory: Path) -> dict[str, Any]:
    testbed = await fresh_testbed(directory / name)
    try:
        pods = len(
            [
                p
                for p in testbed.apiserver.objects.list("v1", "pods")
                if p["spec"].get("nodeName") == NODE
            ]
        )
        if name == "kubegate":
            seconds = await drain_with_kubegate(testbed)
        else:
            seconds = await drain_with_kubectl(testbed, directory / "kubectl-home")
        stats = testbed.apiserver.stats()
        leftovers = left_on_node(testbed)
        print(
            f"{name}: drained {pods} pods from {NODE} in {seconds:.2f} s; "
            f"PDB violations {stats['pdb_violations']}; left behind: {leftovers or 'none'}",
            flush=True,
        )
        return {
            "seconds": seconds,
            "pods": pods,
            "pdb_violations": stats["pdb_violations"],
            "left": leftovers,
        }
    finally:
        await testbed.stop()


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as scratch:
        directory = Path(scratch)
        kubegate = await one_run("kubegate", directory)
        kubectl = await one_run("kubectl", directory)
    return {
        "scenario": SCENARIO,
        "pods": kubegate["pods"],
        "kubegate_s": round(kubegate["seconds"], 2),
        "kubectl_s": round(kubectl["seconds"], 2),
        "ratio": round(kubegate["seconds"] / kubectl["seconds"], 3),
        "pdb_violations": kubegate["pdb_violations"] + kubectl["pdb_violations"],
        "kubegate_pdb_violations": kubegate["pdb_violations"],
        "kubectl_pdb_violations": kubectl["pdb_violations"],
        "complete": not kubegate["left"] and not kubectl["left"],
    }


if __name__ == "__main__":
    figures = asyncio.run(main())
    print(json.dumps(figures))
    sys.exit(0 if figures["complete"] else 1)
