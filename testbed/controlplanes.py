"""The control planes as their kubelets keep them, one control plane or several alike: each
node's kube-apiserver and etcd member run while their static-pod manifest is in that node's
/etc/kubernetes/manifests and no fault holds them down. The kubelet watches that directory
(kubernetes.io/docs/tasks/configure-pod-container/static-pod, "Create static Pods": it "periodically
scans the directory and creates/deletes static Pods as YAML/JSON files appear/disappear there";
kubernetes/kubernetes pkg/kubelet/config/file_linux.go: inotify plus a re-list every
fileCheckFrequency, 20 s by default, which this testbed shortens to `interval`), so a manifest
moved out stops its pod, moved back starts it again, and a changed manifest restarts it (a new
image tag is a new version). On a single control plane that is the only API server: clients get
connection refused until it serves again, as on a real one-node kubeadm cluster. While its etcd
is away the API server keeps running but fails what needs storage (500) and its /readyz
(kubernetes.io/docs/reference/using-api/health-checks: readyz fails when the server is
"temporarily unable to serve requests (for example, waiting for etcd to be available)").

The kubelet also keeps a mirror pod per static pod in the API ("The kubelet automatically tries to
create a mirror Pod on the Kubernetes API server for each static Pod", same page;
pkg/kubelet/pod/mirror_client.go): when no API server answers it tries again on a later sync, and
a pod it restarted gets a new mirror pod. Also the etcd quorum watch behind `etcd_quorum_lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from testbed.apiserver import FakeApiServer
from testbed.apiserver.endpoints import ApiServerEndpoint
from testbed.etcd import Etcd, health_session
from testbed.fleet.etcd_manifest import manifest_data_dir
from testbed.fleet.shims.staticpods import STATIC_PODS, mirror_pod

log = logging.getLogger(__name__)
MANIFESTS = "etc/kubernetes/manifests"
IMAGE_TAG = re.compile(r"image:\s*\S*kube-apiserver:(v\d+\.\d+\.\d+)")
# etcd's default --election-timeout is 1000 ms; a new leader is in place well within this.
ELECTION_GRACE_S = 3.0


class ControlPlaneError(ValueError):
    """No such control plane, or no such component on it: the message says what there is."""


@dataclass
class ControlPlane:
    name: str
    apiserver: ApiServerEndpoint
    root: Path | None  # the node's own /, None without a fleet
    held_down: set[str] = field(default_factory=set)  # components a fault keeps down
    manifest_seen: tuple[int, int] | None = None  # kube-apiserver.yaml's (mtime, size)
    starting: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one kubelet pass at a time
    # Mirror pods whose static pod the kubelet saw stop (its manifest out): replaced once the
    # API answers again, even if the manifest is back by then.
    stale_mirrors: set[str] = field(default_factory=set)

    def manifest(self, pod: str) -> Path | None:
        return None if self.root is None else self.root / MANIFESTS / f"{pod}.yaml"


class ControlPlanes:
    """Every control plane follows its manifests, one or several alike: no test needs a kubelet
    that ignores them (a testbed without a fleet has no manifests, so nothing stops there)."""

    def __init__(
        self,
        apiserver: FakeApiServer,
        etcd: Etcd | None,
        roots: dict[str, Path],
        *,
        apiserver_startup: float = 2.0,
        interval: float = 0.1,
        quorum_interval: float = 0.25,
    ) -> None:
        self.apiserver = apiserver
        self.etcd = etcd
        self.apiserver_startup = apiserver_startup
        self.interval = interval
        self.quorum_interval = quorum_interval
        self.planes = {
            name: ControlPlane(name, endpoint, roots.get(name))
            for name, endpoint in apiserver.endpoints.items()
        }
        self.etcd_quorum_lost = 0
        self.max_etcd_members_down = 0
        self.etcd_health: dict[str, bool] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def plane(self, name: str) -> ControlPlane:
        try:
            return self.planes[name]
        except KeyError:
            known = ", ".join(self.planes)
            raise ControlPlaneError(
                f"{name!r} is not a control plane of this testbed (control planes: {known})"
            ) from None

    def stats(self) -> dict[str, Any]:
        if self.etcd is None:
            return {}
        return {
            "etcd_quorum_lost": self.etcd_quorum_lost,
            "max_etcd_members_down": self.max_etcd_members_down,
            "etcd_members_down": self._etcd_members_down(),
        }

    def _etcd_members_down(self) -> int:
        if self.etcd is None:
            return 0
        return sum(not member.running for member in self.etcd.members.values())

    def description(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "apiserver_url": plane.apiserver.url,
                "etcd_client_url": self._etcd_url(name),
            }
            for name, plane in self.planes.items()
        ]

    async def start(self) -> None:
        for plane in self.planes.values():
            plane.manifest_seen = self._signature(plane)
        self._tasks = [asyncio.create_task(self._reconcile_forever(), name="kubelets")]
        if self.etcd is not None:
            self._tasks.append(asyncio.create_task(self._watch_quorum(), name="etcd-quorum"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for plane in self.planes.values():
            if plane.starting is not None:
                plane.starting.cancel()
                self._tasks.append(plane.starting)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def hold_down(self, name: str, component: str) -> None:
        """A fault: stop the component now and keep it down until `release`."""
        plane = self.plane(name)
        self._need_etcd(component)
        plane.held_down.add(component)
        await self._reconcile(plane)

    async def release(self, name: str, component: str) -> None:
        """Let the kubelet run it again (the API server serves after its startup time)."""
        plane = self.plane(name)
        self._need_etcd(component)
        plane.held_down.discard(component)
        await self._reconcile(plane)

    def _need_etcd(self, component: str) -> None:
        if component == "etcd" and self.etcd is None:
            raise ControlPlaneError("this testbed runs no etcd (it was started with --no-fleet)")

    def _etcd_url(self, name: str) -> str | None:
        if self.etcd is None or name not in self.etcd.members:
            return None
        return self.etcd.members[name].client_url

    def _wanted(self, plane: ControlPlane, component: str, pod: str) -> bool:
        """Whether the kubelet runs it: no fault holds it down and its manifest is in place
        (a restore's etcd.yaml out, the data replaced, etcd.yaml back really stops etcd)."""
        if component in plane.held_down:
            return False
        manifest = plane.manifest(pod)
        return manifest is None or manifest.exists()

    def _manifest_data_dir(self, plane: ControlPlane) -> Path | None:
        manifest = plane.manifest("etcd")
        if manifest is None or plane.root is None:
            return None
        named = manifest_data_dir(manifest)
        return None if named is None else plane.root / named.lstrip("/")

    def _signature(self, plane: ControlPlane) -> tuple[int, int] | None:
        manifest = plane.manifest("kube-apiserver")
        try:
            info = manifest.stat() if manifest is not None else None
        except OSError:
            return None
        return None if info is None else (info.st_mtime_ns, info.st_size)

    async def _reconcile_forever(self) -> None:
        while True:
            for plane in self.planes.values():
                try:
                    await self._reconcile(plane)
                except Exception:  # one bad pass must not end the kubelets for good
                    log.exception("testbed kubelet on %s failed; trying again", plane.name)
            await asyncio.sleep(self.interval)

    async def _reconcile(self, plane: ControlPlane) -> None:
        async with plane.lock:
            await self._reconcile_apiserver(plane)
            await self._reconcile_etcd(plane)
            self._sync_mirror_pods(plane)

    async def _reconcile_etcd(self, plane: ControlPlane) -> None:
        if self.etcd is not None and plane.name in self.etcd.members:
            member = self.etcd.members[plane.name]
            wanted = self._wanted(plane, "etcd", "etcd")
            if wanted and not member.running:
                # The kubelet starts the container on the data dir etcd.yaml names (a hostPath):
                # a restore that swapped that directory's contents is what the member runs on.
                data_dir = self._manifest_data_dir(plane)
                if data_dir is not None:
                    member.data_dir = data_dir
                await self.etcd.start_member(plane.name)
            elif not wanted and member.running:
                await self.etcd.stop_member(plane.name)
            self.max_etcd_members_down = max(self.max_etcd_members_down, self._etcd_members_down())

    async def _reconcile_apiserver(self, plane: ControlPlane) -> None:
        wanted = self._wanted(plane, "apiserver", "kube-apiserver")
        signature = self._signature(plane)
        changed = signature is not None and signature != plane.manifest_seen
        if signature is not None:
            plane.manifest_seen = signature
        if changed:
            # A changed static pod gets a new mirror pod (its config hash differs), which is
            # what kubeadm waits for after writing a new manifest.
            self._mark_mirror_stale(plane, "kube-apiserver")
        if not wanted or changed:
            if plane.starting is not None:
                plane.starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await plane.starting
                plane.starting = None
            await plane.apiserver.stop()
        if wanted and not plane.apiserver.serving and plane.starting is None:
            plane.starting = asyncio.create_task(self._start_apiserver(plane))

    def _take_version(self, plane: ControlPlane) -> None:
        """The version the manifest's image tag names, as the restarted container would run."""
        manifest = plane.manifest("kube-apiserver")
        if manifest is None:
            return
        with contextlib.suppress(OSError):
            tag = IMAGE_TAG.search(manifest.read_text())
            if tag is not None:
                plane.apiserver.version = tag.group(1)

    async def _start_apiserver(self, plane: ControlPlane) -> None:
        try:
            self._take_version(plane)
            await plane.apiserver.start(startup_delay=self.apiserver_startup)
        finally:
            plane.starting = None

    def _api_answers(self) -> bool:
        """Whether a kubelet's write reaches the API: some API server serving, with its storage
        (kubeadm points kubelets at the control-plane endpoint: the load balancer, or the one)."""
        serving = any(plane.apiserver.serving for plane in self.planes.values())
        return serving and self.apiserver.storage_available

    def _mark_mirror_stale(self, plane: ControlPlane, pod: str) -> None:
        current = self.apiserver.objects.get("v1", "pods", "kube-system", f"{pod}-{plane.name}")
        if current is not None:
            plane.stale_mirrors.add(str(current["metadata"].get("uid")))

    def _sync_mirror_pods(self, plane: ControlPlane) -> None:
        """Keep `<pod>-<node>` in kube-system in step with the manifests, as the kubelet's pod
        sync does once it can reach the API (the `mv` shim asks at once; this is its retry)."""
        if plane.root is None:
            return
        objects = self.apiserver.objects
        for pod in STATIC_PODS:
            manifest = plane.manifest(pod)
            present = manifest is not None and manifest.exists()
            name = f"{pod}-{plane.name}"
            current = objects.get("v1", "pods", "kube-system", name)
            uid = None if current is None else str(current["metadata"].get("uid"))
            if not present:
                self._mark_mirror_stale(plane, pod)  # that pod stopped: its mirror is of the past
            if not self._api_answers():
                continue
            if uid is not None and (not present or uid in plane.stale_mirrors):
                objects.delete("v1", "pods", "kube-system", name)
                plane.stale_mirrors.discard(uid)
                current = None
            if present and current is None:
                node = objects.get("v1", "nodes", None, plane.name)
                owner = str(node["metadata"]["uid"]) if node else ""
                objects.create("v1", "pods", mirror_pod(pod, plane.name, owner))

    async def _watch_quorum(self) -> None:
        assert self.etcd is not None
        async with health_session() as session:
            await self._watch_quorum_with(self.etcd, session)

    async def _watch_quorum_with(self, etcd: Etcd, session: aiohttp.ClientSession) -> None:
        had_quorum = True
        without_since: float | None = None  # since when the members' health shows no quorum
        loop = asyncio.get_running_loop()
        while True:
            health = await etcd.healthy_members(session)
            self.etcd_health = health
            for name, plane in self.planes.items():
                # kube-apiserver's /healthz includes its etcd check; kubeadm points each API
                # server at its own member only (--etcd-servers=https://127.0.0.1:2379).
                plane.apiserver.storage_healthy = health.get(name, True)
            if etcd.has_quorum(health):
                without_since = None
            elif without_since is None:
                without_since = loop.time()
            # Fewer than a majority running is a lost quorum at once; members that run but
            # answer unhealthy may be electing a leader (a leader killed outright leaves the
            # rest leaderless for an election timeout), which is a loss only if it lasts.
            running = {name: m.running for name, m in etcd.members.items()}
            quorum = etcd.has_quorum(running) and (
                without_since is None or loop.time() - without_since < ELECTION_GRACE_S
            )
            if had_quorum and not quorum:
                self.etcd_quorum_lost += 1
                log.warning("etcd has no quorum: %s", health)
            had_quorum = quorum
            self.apiserver.storage_available = quorum
            await asyncio.sleep(self.quorum_interval)
