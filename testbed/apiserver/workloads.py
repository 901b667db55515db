"""The apps/v1 controllers: Deployments own ReplicaSets, ReplicaSets and DaemonSets own pods.
Each `sync_*` reads what it is given, writes only what changed, and returns nothing.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

from testbed.apiserver.pods import (
    controller_of,
    is_active,
    is_ready,
    owner_reference,
    pod_from_template,
    random_suffix,
    uid_of,
    with_pod_defaults,
)
from testbed.apiserver.scheduling import DAEMON_TOLERATIONS, why_not
from testbed.apiserver.store import ObjectStore
from testbed.apiserver.timestamps import rfc3339

Object = dict[str, Any]
APPS = "apps/v1"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
# Testbed-only: comma-separated node names for the first pods a ReplicaSet creates (one per
# name, cycling), so a scenario can say where its workloads start. Replacements are scheduled.
INITIAL_NODES = "testbed.kubegate.io/initial-nodes"
# (namespace, name) -> begin a pod's graceful deletion, as the controllers' DELETE would.
DeletePod = Callable[[str, str], None]


def template_hash(template: Object) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:10])


def owned_by(owner: Object, objects: list[Object]) -> list[Object]:
    uid = uid_of(owner)
    return [obj for obj in objects if (controller_of(obj) or {}).get("uid") == uid]


def _write_status(store: ObjectStore, api_version: str, resource: str, obj: Object, status: Object):  # type: ignore[no-untyped-def]
    pass
