"""`bench.ack --with-job`: a kubegate job kept running while the acks are measured.

The job is a drain of worker-3 held by a PodDisruptionBudget: worker-3's one `held` pod is
covered by `minAvailable: 1`, so the Eviction API refuses it (429) for as long as the budget
allows no disruption and the drain's eviction step goes on watching the budget and retrying
until its `--timeout`. It is started the way people start it: alice types it, bob approves
it, both as signed Slack requests; the benchmark measures only once the job is RUNNING, and
at the end relaxes the budget so that the drain finishes.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from bot.app import Runtime
from bot.store import JobState
from testbed.slack import Message
from testbed.up import CHANNEL, Testbed

NODE = "worker-3"
REQUESTER, APPROVER = "U0ALICE", "U0BOB"  # both in the sre role; the requester cannot approve
COMMAND = f"/kube drain {NODE} --timeout 30m"
JOB_ID = re.compile(r"job #(\d+)")
START_DEADLINE_S = 60.0
RUNNING = JobState.RUNNING.value

HELD_BY_A_BUDGET: dict[str, Any] = {
    "manifests": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "held",
                "namespace": "bench",
                "labels": {"app": "held"},
                "annotations": {"testbed.kubegate.io/initial-nodes": NODE},
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "held"}},
                "template": {
                    "metadata": {"labels": {"app": "held"}},
                    "spec": {"containers": [{"name": "held", "image": "nginx:1.27"}]},
                },
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "held", "namespace": "bench"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "held"}}},
        },
    ]
}


def root_message(testbed: Testbed) -> Message | None:
    for message in testbed.slack.messages(CHANNEL):
        if "job #" in message.shown and NODE in message.shown:
            return message
    return None


async def start_held_drain(testbed: Testbed, runtime: Runtime) -> int:
    """Request and approve the drain; return its job id once it is RUNNING."""
    await testbed.apiserver.load_scenario(HELD_BY_A_BUDGET)
    answer = await testbed.slack.user(REQUESTER).slash(COMMAND, channel=CHANNEL)
    if answer.status != 200:
        raise RuntimeError(f"{COMMAND} was answered HTTP {answer.status}")
    root = await testbed.slack.wait_for(lambda: root_message(testbed), timeout=START_DEADLINE_S)
    found = JOB_ID.search(root.shown)
    if found is None:
        raise RuntimeError(f"no job id in the root message: {root.shown!r}")
    job_id = int(found.group(1))
    click = await testbed.slack.user(APPROVER).click(
        channel=CHANNEL, message_ts=root.ts, label="Approve"
    )
    if click.status != 200:
        raise RuntimeError(f"bob's Approve was answered HTTP {click.status}")
    await until_running(runtime, job_id)
    return job_id


async def until_running(runtime: Runtime, job_id: int) -> None:
    """The job is RUNNING once its state says so in the store (it stays there: held)."""
    deadline = time.monotonic() + START_DEADLINE_S
    while (state := runtime.store.job(job_id).state) is not JobState.RUNNING:
        if state in (JobState.FAILED, JobState.SUCCEEDED, JobState.CANCELLED):
            raise RuntimeError(f"the drain ended {state.value} before the benchmark started")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the drain is still {state.value} after {START_DEADLINE_S:.0f} s")
        await asyncio.sleep(0.1)


def job_state(runtime: Runtime, job_id: int) -> str:
    return runtime.store.job(job_id).state.value


async def let_it_finish(testbed: Testbed, runtime: Runtime, job_id: int) -> str:
    """Relax the budget (`minAvailable: 0`): the eviction goes through and the drain ends as any
    drain does; its state then. (`/kube cancel` would wait for the step's --timeout: today a
    drain's eviction step does not stop for a cancel while a budget holds it.)"""
    testbed.apiserver.objects.patch(
        "policy/v1", "poddisruptionbudgets", "bench", "held", {"spec": {"minAvailable": 0}}
    )
    deadline = time.monotonic() + START_DEADLINE_S
    while runtime.store.job(job_id).state is JobState.RUNNING and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return job_state(runtime, job_id)
