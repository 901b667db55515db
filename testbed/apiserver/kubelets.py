"""The scheduler and the kubelets: pending pods get bound to a fitting node; a bound pod starts,
turns Ready after the readiness delay, and disappears the termination delay after its deletion.
A restarted kubelet reports its node NotReady until its runtime checks pass, then Ready.
"""

from __future__ import annotations

import asyncio
from typing import Any

from testbed.apiserver.pods import (
    is_active,
    is_finished,
    is_ready,
    is_terminating,
    kubelet_status,
    uid_of,
    unschedulable_status,
)
from testbed.apiserver.scheduling import pick_node, unschedulable_message
from testbed.apiserver.statuses import set_status
from testbed.apiserver.store import ObjectStore
from testbed.apiserver.timestamps import rfc3339

Object = dict[str, Any]
# A starting kubelet's Ready condition (pkg/kubelet/nodestatus/setters.go, ReadyCondition, with
# the runtime and PLEG errors it reports until its first successful relist).
STARTING_REASON = "KubeletNotReady"
STARTING_MESSAGE = (
    "[container runtime status check may not have completed yet, PLEG is not healthy: "
    "pleg has yet to be successful]"
)


class Kubelets:
    """Timers per pod uid; nothing polls: each delay is one `call_later`."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        readiness_delay: float,
        termination_delay: float,
        start_delay: float = 3.0,
    ) -> None:
        self.store = store
        self.readiness_delay = readiness_delay
        self.termination_delay = termination_delay
        # How long a restarted kubelet reports NotReady before its checks pass.
        self.start_delay = start_delay
        self._timers: dict[str, tuple[str, asyncio.TimerHandle]] = {}
        self._starting: dict[str, asyncio.TimerHandle] = {}
        self._addresses: dict[str, int] = {}

    def schedule(self, pods: list[Object], nodes: list[Object]) -> None:
        load: dict[str, int] = {}
        for pod in pods:
            if pod["spec"].get("nodeName") and is_active(pod):
                load[pod["spec"]["nodeName"]] = load.get(pod["spec"]["nodeName"], 0) + 1
        for pod in pods:
            if pod["spec"].get("nodeName") or not is_active(pod):
                continue
            node = pick_node(pod["spec"], nodes, load)
            if node is None:
                message = unschedulable_message(pod["spec"], nodes)
                set_status(self.store, "v1", "pods", pod, unschedulable_status(message))
                continue
            load[node] = load.get(node, 0) + 1
            self._bind(pod, node)

    def tend(self, pods: list[Object], nodes: list[Object]) -> None:
        by_name = {node["metadata"]["name"]: node for node in nodes}
        alive = set()
        for pod in pods:
            uid, node = uid_of(pod), by_name.get(pod["spec"].get("nodeName", ""))
            alive.add(uid)
            if node is None:
                continue
            if is_terminating(pod):
                self._stop_later(pod)
            elif not is_finished(pod) and not is_ready(pod) and uid not in self._timers:
                if not pod.get("status", {}).get("podIP"):
                    starting = kubelet_status(
                        pod, host_ip=_internal_ip(node), pod_ip=self._next_ip(node), ready=False
                    )
                    set_status(self.store, "v1", "pods", pod, starting)
                self._later(pod, "start", self.readiness_delay, self._start)
        for uid in set(self._timers) - alive:
            self._timers.pop(uid)[1].cancel()

    def close(self) -> None:
        for _kind, timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for starting in self._starting.values():
            starting.cancel()
        self._starting.clear()

    def kubelet_started(self, node: str, version: str) -> None:
        """A kubelet (re)started on `node`: its first status update carries its version and
        Ready=False; `start_delay` later it reports Ready. Pods stay put: a restart is shorter
        than the node lifecycle controller's grace period for missing heartbeats
        (kube-controller-manager --node-monitor-grace-period, 40 s by default), after which it
        would mark the node Unknown and taint it (pkg/controller/nodelifecycle)."""
        now = rfc3339()

        def starting(current: Object) -> Object:
            status = current.setdefault("status", {})
            info = status.setdefault("nodeInfo", {})
            info["kubeletVersion"] = info["kubeProxyVersion"] = version
            _set_ready(status, "False", STARTING_REASON, STARTING_MESSAGE, now)
            return current

        if self.store.get("v1", "nodes", None, node) is None:
            return
        self.store.update("v1", "nodes", None, node, starting)
        previous = self._starting.pop(node, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._starting[node] = loop.call_later(self.start_delay, self._kubelet_ready, node)

    def _kubelet_ready(self, node: str) -> None:
        self._starting.pop(node, None)

        def ready(current: Object) -> Object:
            status = current.setdefault("status", {})
            _set_ready(status, "True", "KubeletReady", "kubelet is posting ready status", rfc3339())
            return current

        if self.store.get("v1", "nodes", None, node) is not None:
            self.store.update("v1", "nodes", None, node, ready)

    def _bind(self, pod: Object, node: str) -> None:
        def bind(current: Object) -> Object:
            current["spec"]["nodeName"] = node
            conditions = current.setdefault("status", {}).get("conditions") or []
            current["status"]["conditions"] = [
                c for c in conditions if c.get("type") != "PodScheduled"
            ]
            return current

        metadata = pod["metadata"]
        self.store.update("v1", "pods", metadata["namespace"], metadata["name"], bind)

    def _stop_later(self, pod: Object) -> None:
        timer = self._timers.get(uid_of(pod))
        if timer is not None and timer[0] == "stop":
            return
        if timer is not None:
            timer[1].cancel()
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds", 30))
        self._later(pod, "stop", min(self.termination_delay, grace), self._remove)

    def _later(self, pod: Object, kind: str, delay: float, action: Any) -> None:
        metadata = pod["metadata"]
        handle = asyncio.get_running_loop().call_later(
            delay, action, metadata["namespace"], metadata["name"], metadata["uid"]
        )
        self._timers[metadata["uid"]] = (kind, handle)

    def _current(self, namespace: str, name: str, uid: str) -> Object | None:
        self._timers.pop(uid, None)
        pod = self.store.get("v1", "pods", namespace, name)
        return pod if pod is not None and uid_of(pod) == uid else None

    def _start(self, namespace: str, name: str, uid: str) -> None:
        pod = self._current(namespace, name, uid)
        if pod is None or is_terminating(pod):
            return
        status = pod.get("status", {})
        ready = kubelet_status(
            pod, host_ip=status.get("hostIP", ""), pod_ip=status.get("podIP", ""), ready=True
        )
        set_status(self.store, "v1", "pods", pod, ready)

    def _remove(self, namespace: str, name: str, uid: str) -> None:
        if self._current(namespace, name, uid) is not None:
            self.store.delete("v1", "pods", namespace, name)

    def _next_ip(self, node: Object) -> str:
        name = node["metadata"]["name"]
        count = self._addresses.get(name, 0)
        self._addresses[name] = count + 1
        prefix = str(node["spec"].get("podCIDR", "10.244.0.0/24")).rsplit(".", 1)[0]
        return f"{prefix}.{2 + count % 250}"


def _set_ready(status: Object, value: str, reason: str, message: str, now: str) -> None:
    conditions = status.setdefault("conditions", [])
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None:
        ready = {"type": "Ready"}
        conditions.append(ready)
    if ready.get("status") != value:
        ready["lastTransitionTime"] = now
    ready.update(status=value, reason=reason, message=message, lastHeartbeatTime=now)


def _internal_ip(node: Object) -> str:
    addresses = node.get("status", {}).get("addresses") or []
    return next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "")
