"""Restarting a control plane's static pods the kubeadm way: move the manifest out of the
kubelet's manifest directory, wait for the kubelet to notice, move it back, wait for its mirror
pod to be Ready again. Safe to run again: a manifest found parked is put back first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from playbooks.base import ClusterHandle
from playbooks.errors import OperationError
from playbooks.pods import pod_view
from playbooks.remote import Remote, RemoteCommand

MANIFEST_DIR = "/etc/kubernetes/manifests"
CONTROL_PLANE_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
POLL_INTERVAL_S = 0.25


class StaticPodError(OperationError):
    """A static pod did not come back; the message names the pod, node and what to check."""


@dataclass(frozen=True)
class StaticPod:
    name: str  # kube-apiserver…
    node: str
    holding_dir: str

    @property
    def manifest(self) -> str:
        return f"{MANIFEST_DIR}/{self.name}.yaml"

    @property
    def parked(self) -> str:
        return f"{self.holding_dir}/{self.name}.yaml"

    @property
    def mirror_pod(self) -> str:
        """The kubelet names a static pod's mirror `<name>-<node>` in kube-system."""
        return f"{self.name}-{self.node}"


async def mirror_uid(cluster: ClusterHandle, pod: StaticPod) -> str | None:
    found = await cluster.kube.get_pod("kube-system", pod.mirror_pod)
    return None if found is None else str(found["metadata"].get("uid"))


async def wait_until_ready_again(
    cluster: ClusterHandle,
    pod: StaticPod,
    *,
    old_uid: str | None,
    timeout: float,
    say: Callable[[str], Awaitable[None]] | None = None,
) -> float:
    """Seconds until a mirror pod other than `old_uid` is Ready; StaticPodError at the timeout.
    An API that does not answer is waited through, said once in the thread: on a single
    control plane it is the very kube-apiserver (or the etcd behind it) being restarted."""
    started, told = time.monotonic(), False
    while True:
        try:
            found = await cluster.kube.get_pod("kube-system", pod.mirror_pod)
        except OperationError as error:
            found = None
            if not told and say is not None:
                told = True
                await say(
                    f"{pod.node}: waiting for the API server to come back after the "
                    f"{pod.name} restart (it answered: {error.message})"
                )
        if found is not None:
            view = pod_view(found)
            if view.ready and not view.terminating and str(found["metadata"]["uid"]) != old_uid:
                return time.monotonic() - started
        if time.monotonic() - started >= timeout:
            state = "absent" if found is None else "not Ready"
            raise StaticPodError(
                f"{pod.mirror_pod} is {state} {timeout:.0f} s after its manifest went back on "
                f"{pod.node}; check the kubelet there (`journalctl -u kubelet`)"
            )
        await asyncio.sleep(POLL_INTERVAL_S)


async def restart_static_pod(
    cluster: ClusterHandle,
    remote: Remote,
    pod: StaticPod,
    *,
    pause: float,
    timeout: float,
    say: Callable[[str], Awaitable[None]],
    api_back: Callable[[], Awaitable[None]] | None = None,
    running: str | None = None,
) -> str:
    """One pod's restart; a sentence for the thread. `api_back`, once the manifest is back,
    waits for the node's own API server (which that restart may have taken away); `running`,
    the step's running file the moves run with (playbooks/remote.py)."""
    in_place = await remote.answer(RemoteCommand.of("test", "-f", pod.manifest)) is not None
    old_uid = await mirror_uid(cluster, pod)
    if in_place:
        ran = await remote.run_in_order(
            [
                RemoteCommand.of("mkdir", "-p", pod.holding_dir),
                RemoteCommand.of("mv", pod.manifest, pod.parked),
            ],
            running=running,
        )
        if not isinstance(ran, list):
            raise StaticPodError(f"moving {pod.manifest} out on {pod.node} failed: {ran.summary}")
        await say(f"{pod.node}: {pod.name} manifest moved out; waiting {pause:g} s")
        await asyncio.sleep(pause)  # the kubelet re-reads its manifest directory every 20 s
    elif await remote.answer(RemoteCommand.of("test", "-f", pod.parked)) is None:
        raise StaticPodError(
            f"{pod.node} has no {pod.manifest} (nor a parked copy in "
            f"{pod.holding_dir}): is this a kubeadm control plane?"
        )
    back = await remote.run_in_order(
        [RemoteCommand.of("mv", pod.parked, pod.manifest)], running=running
    )
    if not isinstance(back, list):
        raise StaticPodError(
            f"moving {pod.name}'s manifest back on {pod.node} failed: "
            f"{back.summary}; it is parked in {pod.holding_dir}"
        )
    if api_back is not None:
        await api_back()
    took = await wait_until_ready_again(cluster, pod, old_uid=old_uid, timeout=timeout, say=say)
    await say(f"{pod.node}: {pod.mirror_pod} Ready again after {took:.1f} s")
    return f"{pod.name} restarted"
