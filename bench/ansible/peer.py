"""Run upgrade-cluster.yml on a testbed: an inventory made from its testbed.json, checked by
`ansible-inventory` and `ansible-playbook --syntax-check` before anything is timed, then the run,
timed whole and per play (each `PLAY [...]` banner is timestamped as Ansible prints it)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.fanout_clients import ansible_environment, ansible_executable

HERE = Path(__file__).parent
PLAYBOOK = HERE / "upgrade-cluster.yml"
CONFIG = HERE / "ansible.cfg"
DEADLINE_S = 1800.0
CONTROL_PLANE_GROUP = "kube_control_plane"
WORKER_GROUP = "kube_node"
# The plays' names up to their first comma, as upgrade-cluster.yml names them.
CONTROL_PLANES_PLAY = "Upgrade the control planes one at a time"
WORKERS_PLAY = "Upgrade the workers"


class PeerError(RuntimeError):
    """Ansible could not be run as the benchmark needs (not installed, inventory or syntax)."""


@dataclass
class PlaybookRun:
    """One ansible-playbook run: wall seconds, seconds per play (first banner of a play to the
    next play's banner or the recap), exit code and output."""

    seconds: float
    plays: dict[str, float] = field(default_factory=dict)
    exit_code: int = 0
    output: str = ""
    # The machine's 1-minute load when the run started and ended: how much to trust it.
    load: tuple[float, float] = (0.0, 0.0)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def inventory(description: dict[str, Any]) -> dict[str, Any]:
    """kubespray's groups from testbed.json: kube_control_plane in the testbed's order (the first
    runs `kubeadm upgrade apply` and every kubectl), kube_node for the workers, k8s_cluster for
    both; every host reached over its own sshd as the fleet account, its host key pinned."""
    ssh = description["ssh"]
    nodes: dict[str, dict[str, Any]] = ssh["nodes"]
    planes = description.get("control_planes") or [
        {"name": name} for name, node in nodes.items() if node["role"] == "control-plane"
    ]

    def reach(name: str) -> dict[str, Any]:
        return {"ansible_host": nodes[name]["address"], "ansible_port": nodes[name]["port"]}

    control = {
        plane["name"]: reach(plane["name"])
        | ({"apiserver_url": plane["apiserver_url"]} if plane.get("apiserver_url") else {})
        for plane in planes
    }
    workers = {name: reach(name) for name in nodes if name not in control}
    pinned = (
        f"-o UserKnownHostsFile={ssh['known_hosts']} -o StrictHostKeyChecking=yes "
        "-o IdentitiesOnly=yes"
    )
    return {
        "all": {
            "vars": {
                "ansible_user": ssh["user"],
                "ansible_ssh_private_key_file": ssh["private_key"],
                "ansible_ssh_common_args": pinned,
                # The fleet's hosts are this machine, so its Python is theirs.
                "ansible_python_interpreter": "/usr/bin/python3",
            },
            "children": {
                CONTROL_PLANE_GROUP: {"hosts": control},
                WORKER_GROUP: {"hosts": workers},
                "k8s_cluster": {"children": {CONTROL_PLANE_GROUP: {}, WORKER_GROUP: {}}},
            },
        }
    }


def inventory_problems(listed: dict[str, Any], description: dict[str, Any]) -> list[str]:
    """What `ansible-inventory --list` shows that the fleet would not work with: a node missing
    or in the wrong group, the wrong first control plane, a host reached at the wrong sshd."""
    problems = []
    nodes = description["ssh"]["nodes"]
    planes = [p["name"] for p in description.get("control_planes") or []] or [
        name for name, node in nodes.items() if node["role"] == "control-plane"
    ]
    workers = [name for name in nodes if name not in planes]
    for group, wanted in ((CONTROL_PLANE_GROUP, planes), (WORKER_GROUP, workers)):
        hosts = listed.get(group, {}).get("hosts", [])
        if hosts != wanted:
            problems.append(f"group {group} is {hosts}, the fleet has {wanted}")
    hostvars = listed.get("_meta", {}).get("hostvars", {})
    for name, node in nodes.items():
        seen = hostvars.get(name, {})
        reached = (seen.get("ansible_host"), seen.get("ansible_port"))
        if reached != (node["address"], node["port"]):
            problems.append(
                f"{name} is reached at {reached}, its sshd is at {(node['address'], node['port'])}"
            )
    for name in planes:
        if "apiserver_url" not in hostvars.get(name, {}):
            problems.append(f"{name} has no apiserver_url to wait for after its upgrade")
    return problems


# The playbook's pace: kubespray's own polls (the drain under async with `poll: 15`, /healthz
# every 5 s), or "fast": the drain in the foreground and /healthz every 1 s.
PACES: dict[str, dict[str, int]] = {
    "kubespray": {},
    "fast": {"drain_async": 0, "check_api_delay": 1},
}


async def run_upgrade(
    description: dict[str, Any], *, version: str, serial: int, scratch: Path, pace: str
) -> PlaybookRun:
    """Check the inventory and the playbook, then run it; the checks are not timed."""
    playbook_bin = ansible_executable().with_name("ansible-playbook")
    inventory_bin = ansible_executable().with_name("ansible-inventory")
    environment = prepared(scratch)
    inventory_path = scratch / "inventory.yaml"
    inventory_path.write_text(yaml.safe_dump(inventory(description), sort_keys=False))
    # --output, so warnings on stderr never end up in the JSON.
    listed = scratch / "inventory-list.json"
    code, output, _ = await _run(
        [str(inventory_bin), "-i", str(inventory_path), "--list", "--output", str(listed)],
        environment,
    )
    if code != 0:
        raise PeerError(f"ansible-inventory failed ({code}): {output[-2000:]}")
    problems = inventory_problems(json.loads(listed.read_text()), description)
    if problems:
        raise PeerError("the inventory does not fit the fleet: " + "; ".join(problems))
    playbook = [str(playbook_bin), "-i", str(inventory_path), str(PLAYBOOK)]
    code, output, _ = await _run([*playbook, "--syntax-check"], environment)
    if code != 0:
        raise PeerError(f"ansible-playbook --syntax-check failed ({code}): {output[-2000:]}")
    extra = json.dumps({"kube_version": version, "serial": serial} | PACES[pace])
    load_before, started = os.getloadavg()[0], time.monotonic()
    code, output, banners = await _run([*playbook, "--extra-vars", extra], environment)
    finished, load_after = time.monotonic(), os.getloadavg()[0]
    return PlaybookRun(
        finished - started, play_seconds(banners, finished), code, output, (load_before, load_after)
    )


def figures(
    run: PlaybookRun, stats: dict[str, Any], *, not_ready: int, problems: list[str], pace: str
) -> dict[str, Any]:
    """The peer's keys in bench.upgrade's `minor_ha`: its times, the testbed's safety counters
    over its run (`stats`), and what was wrong with the cluster afterwards (`problems`)."""
    if not run.ok:
        problems = [f"ansible-playbook exited {run.exit_code}", *problems]
    plays = {name.split(",")[0]: seconds for name, seconds in run.plays.items()}
    return {
        "ansible_s": round(run.seconds, 2),
        "ansible_pace": pace,
        "ansible_control_planes_s": round(plays.get(CONTROL_PLANES_PLAY, 0.0), 2),
        "ansible_workers_s": round(plays.get(WORKERS_PLAY, 0.0), 2),
        "ansible_pdb_violations": stats["pdb_violations"],
        "ansible_max_unschedulable": stats["max_unschedulable_nodes"],
        "ansible_max_apiservers_down": stats["max_apiservers_down"],
        "ansible_etcd_quorum_lost": stats.get("etcd_quorum_lost", 0),
        # kubespray uncordons without waiting for the restarted kubelet: how many nodes were
        # not Ready yet when the playbook ended.
        "ansible_not_ready_at_end": not_ready,
        "ansible_ok": not problems,
        "ansible_problems": problems,
        "ansible_load_1m_before": round(run.load[0], 2),
        "ansible_load_1m_after": round(run.load[1], 2),
    }


def compared(kubegate: dict[str, Any], ansible: dict[str, Any]) -> dict[str, Any]:
    """Like with like: both upgrade the control planes one at a time, then the workers four at
    a time. `ratio_vs_ansible` compares the whole upgrades, `_workers` the workers' phases."""
    workers = ansible["ansible_workers_s"]
    return ansible | {
        "ratio_vs_ansible": round(kubegate["kubegate_s"] / ansible["ansible_s"], 3),
        "ratio_vs_ansible_workers": round(kubegate["wall_s"] / workers, 3) if workers else None,
    }


def prepared(scratch: Path) -> dict[str, str]:
    """Ansible's environment, every directory it writes in `scratch`. The remote temp is on the
    nodes, i.e. this machine, and made by the fleet's own account, so it is world-writable."""
    scratch.chmod(0o755)
    remote = scratch / "remote"
    remote.mkdir(mode=0o1777, exist_ok=True)
    remote.chmod(0o1777)
    environment = ansible_environment(scratch, remote / "ansible-tmp")
    # Unbuffered, so each play banner reaches us when Ansible prints it.
    return environment | {"ANSIBLE_CONFIG": str(CONFIG), "PYTHONUNBUFFERED": "1"}


def play_seconds(banners: Sequence[tuple[float, str]], finished: float) -> dict[str, float]:
    """Per play: from its first banner (with `serial`, Ansible prints one per batch) to the
    first banner of the next play, or the end of the run."""
    starts: dict[str, float] = {}
    order: list[str] = []
    for moment, name in banners:
        if name not in starts:
            starts[name] = moment
            order.append(name)
    ends = [starts[name] for name in order[1:]] + [finished]
    return {name: end - starts[name] for name, end in zip(order, ends, strict=True)}


def banner(line: str) -> str | None:
    """`PLAY [name] ****` -> name; `PLAY RECAP ****` -> "RECAP"; None for any other line."""
    if line.startswith("PLAY RECAP"):
        return "RECAP"
    if line.startswith("PLAY [") and "]" in line:
        return line[len("PLAY [") : line.rindex("]")]
    return None


async def _run(
    argv: Sequence[str], environment: dict[str, str]
) -> tuple[int, str, list[tuple[float, str]]]:
    """(exit code, stdout+stderr, timestamped play banners other than the recap)."""
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-ansible-cwd-") as cwd:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        lines: list[str] = []
        banners: list[tuple[float, str]] = []
        try:
            async with asyncio.timeout(DEADLINE_S):
                async for raw in process.stdout:
                    line = raw.decode(errors="replace")
                    name = banner(line)
                    if name is not None and name != "RECAP":
                        banners.append((time.monotonic(), name))
                    lines.append(line)
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            lines.append(f"{argv[0]} did not finish in {DEADLINE_S:.0f} s\n")
            return -1, "".join(lines), banners
    assert process.returncode is not None
    return process.returncode, "".join(lines), banners
