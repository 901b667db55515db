"""What start-up freezes (bot/app.py `freeze_start_up_heap`) must include the Kubernetes client's
lazily built parts, or every full garbage collection walks them while acks wait (bench.ack)."""

from __future__ import annotations

import subprocess
import sys

# Run in a fresh interpreter: another test in this process may have built the classes already.
PROBE = """
import asyncio, gc, sys
from kubernetes.aio import client
from playbooks.kube import build_api_classes
if sys.argv[1] == "warm":
    asyncio.run(build_api_classes())
gc.collect()
gc.freeze()
before = len(gc.get_objects())
api_client = client.ApiClient(configuration=client.Configuration())
client.CoreV1Api(api_client)
client.PolicyV1Api(api_client)
client.AutoscalingV2Api(api_client)
print(len(gc.get_objects()) - before)
"""


def objects_made_by_the_first_cluster_client(how: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, how], capture_output=True, text=True, check=True, timeout=60
    )
    return int(done.stdout.strip())


def test_a_cluster_client_made_after_start_up_adds_nothing_a_full_collection_must_walk() -> None:
    cold = objects_made_by_the_first_cluster_client("cold")
    warm = objects_made_by_the_first_cluster_client("warm")
    assert cold > 10_000  # the client still builds lazily: what the warm-up is for
    assert warm < 200, f"{warm} objects left for after start-up"
