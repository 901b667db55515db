"""Whether a control plane may be touched, and waiting until it is whole again: every etcd
member healthy (asked on the node, as `etcdctl endpoint health --cluster` through the node's etcd
container when the host has no etcdctl) and the node's own kube-apiserver ready (its /readyz,
which includes its etcd check), never the load balancer, which hides one API server down.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from playbooks.errors import OperationError
from playbooks.etcd_tools import etcd_tools
from playbooks.inventory import EtcdSettings
from playbooks.remote import Remote, RemoteCommand
from playbooks.ssh import CommandResult

CLUSTER_CA = "/etc/kubernetes/pki/ca.crt"
POLL_INTERVAL_S = 0.5
READYZ_TIMEOUT_S = 3.0


class ControlPlaneUnhealthy(OperationError):
    """A control plane did not come back whole in time; the message names what is missing."""


def etcd_problem(result: CommandResult) -> str | None:
    """None when every member answered healthy; else what etcdctl said is wrong. Pure."""
    lines = (result.stdout + "\n" + result.stderr).splitlines()
    unhealthy = [line.strip() for line in lines if "is unhealthy" in line]
    if result.ok and not unhealthy:
        return None
    if unhealthy:
        return "etcd is not healthy with every member up: " + "; ".join(unhealthy)
    return f"etcd health could not be checked (exit {result.exit_status}): {result.tail(3)}"


async def check_etcd(remote: Remote, etcd: EtcdSettings) -> str | None:
    """`etcdctl endpoint health --cluster` as this node runs it: in its etcd container (kubeadm
    runs etcd as a static pod; the host usually has no etcdctl) or the configured binary."""
    try:
        tools = await etcd_tools(remote.ssh, remote.target, etcd)
    except OperationError as error:
        return f"etcd health could not be checked: {error.message}"
    health = tools.etcdctl("--command-timeout=5s", "endpoint", "health", "--cluster")
    return etcd_problem(await remote.ssh.run(remote.target, health, timeout=remote.timeout))


async def apiserver_ready(url: str, ca_pem: str) -> bool:
    """Whether that one kube-apiserver answers /readyz with 200 (anonymous, as kubeadm allows)."""
    tls = ssl.create_default_context(cadata=ca_pem)
    timeout = aiohttp.ClientTimeout(total=READYZ_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{url}/readyz", ssl=tls) as answer,
        ):
            return answer.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False  # down or restarting: the caller keeps asking until its deadline


@dataclass(frozen=True)
class ControlPlaneNode:
    """One control plane as the health checks reach it."""

    name: str
    remote: Remote
    apiserver_url: str
    etcd: EtcdSettings

    async def cluster_ca(self) -> str:
        ca = await self.remote.answer(RemoteCommand.of("cat", CLUSTER_CA))
        if not ca:
            raise ControlPlaneUnhealthy(f"cannot read {CLUSTER_CA} on {self.name}")
        return ca + "\n"

    async def wait_for_api_server(
        self, *, after: str, timeout: float, say: Callable[[str], Awaitable[None]]
    ) -> None:
        """Until its own kube-apiserver is ready after `after` restarted, said once in the thread
        when it is not at first: on a single control plane the whole API is away meanwhile.
        ControlPlaneUnhealthy at the timeout."""
        ca, started, told = await self.cluster_ca(), time.monotonic(), False
        while not await apiserver_ready(self.apiserver_url, ca):
            if time.monotonic() - started >= timeout:
                raise ControlPlaneUnhealthy(
                    f"{self.name}'s kube-apiserver at {self.apiserver_url} is not ready "
                    f"{timeout:.0f} s after the {after} restart"
                )
            if not told:
                told = True
                await say(
                    f"{self.name}: waiting for the API server to come back after the {after} "
                    "restart"
                )
            await asyncio.sleep(POLL_INTERVAL_S)

    async def wait_until_whole(
        self, *, timeout: float, say: Callable[[str], Awaitable[None]] | None = None
    ) -> float:
        """Seconds until its API server is ready and every etcd member healthy, tolerating the
        seconds they are down; ControlPlaneUnhealthy at the timeout."""
        ca, started, told = await self.cluster_ca(), time.monotonic(), False
        while True:
            ready = await apiserver_ready(self.apiserver_url, ca)
            problem = None if not ready else await check_etcd(self.remote, self.etcd)
            if not told and say is not None and not (ready and problem is None):
                told = True
                waiting = problem or f"its kube-apiserver at {self.apiserver_url} is not ready yet"
                await say(f"{self.name}: waiting, as {waiting}")
            if ready and problem is None:
                took = time.monotonic() - started
                if say is not None:
                    await say(f"{self.name}: kube-apiserver ready and etcd healthy ({took:.1f} s)")
                return took
            if time.monotonic() - started >= timeout:
                missing = problem or f"its kube-apiserver at {self.apiserver_url} is not ready"
                raise ControlPlaneUnhealthy(
                    f"{self.name} is not whole {timeout:.0f} s after its restart: {missing}"
                )
            await asyncio.sleep(POLL_INTERVAL_S)
