"""`Etcd`: a real etcd cluster from Debian's etcd-server, one member per control plane, each with
its data dir, its ports on its node's address, and the flags kubeadm's stacked-etcd static pod
gives it (kubernetes/kubernetes cmd/kubeadm/app/phases/etcd/local.go, getEtcdCommand): client
and peer TLS with client-cert auth, `--name` the node name, `--initial-cluster` every member's
`https://<ip>:2380`. Members start together; one can be stopped and started again on its ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from testbed.daemons import free_port, stop_daemon
from testbed.etcd.certs import EtcdPki, write_etcd_ca, write_member_pki

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
READY_TIMEOUT_S = 30.0
START_ATTEMPTS = 5
HEALTH_TIMEOUT_S = 1.5
SEED_KEYS = {
    "/registry/namespaces/default": '{"kind":"Namespace","metadata":{"name":"default"}}',
    "/registry/namespaces/kube-system": '{"kind":"Namespace","metadata":{"name":"kube-system"}}',
    "/registry/configmaps/kube-system/kubeadm-config": '{"kind":"ConfigMap"}',
}


class EtcdError(RuntimeError):
    pass


def empty_dir(path: Path) -> None:
    """Remove what is in `path` but not `path` itself: it may be a node's bind-mounted
    /var/lib/etcd, which must stay the same directory."""
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


class EtcdMember:
    """One etcd process: `spawn` it, `stop` it; its ports stay its own across restarts."""

    def __init__(self, name: str, address: str, workdir: Path) -> None:
        self.name, self.address = name, address
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "etcd.log"
        self.client_port = 0
        self.peer_port = 0
        self._pki: EtcdPki | None = None
        self._tls: ssl.SSLContext | None = None
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pki(self) -> EtcdPki:
        if self._pki is None:
            raise EtcdError("etcd is not started")
        return self._pki

    @pki.setter
    def pki(self, value: EtcdPki) -> None:
        self._pki = value

    @property
    def client_url(self) -> str:
        return f"https://{self.address}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{self.address}:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def choose_ports(self) -> None:
        self.client_port, self.peer_port = free_port(self.address), free_port(self.address)

    async def spawn(self, initial_cluster: str, *, state: str) -> None:
        pki = self.pki
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # etcd wants its data dir private (fileutil.PrivateDirMode)
        args = [
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={initial_cluster}",
            f"--initial-cluster-state={state}",
            f"--cert-file={pki.server_cert}",
            f"--key-file={pki.server_key}",
            f"--trusted-ca-file={pki.ca}",
            "--client-cert-auth=true",
            f"--peer-cert-file={pki.peer_cert}",
            f"--peer-key-file={pki.peer_key}",
            f"--peer-trusted-ca-file={pki.ca}",
            "--peer-client-cert-auth=true",
            "--snapshot-count=10000",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                ETCD, *args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
            )

    async def stop(self, *, at_once: bool = False) -> None:
        """SIGTERM (a clean stop, as the kubelet stops a pod); `at_once` kills instead."""
        process, self.process = self.process, None
        if at_once and process is not None and process.returncode is None:
            process.kill()
        await stop_daemon(process)

    def client_tls(self) -> ssl.SSLContext:
        if self._tls is None:
            tls = ssl.create_default_context(cafile=str(self.pki.ca))
            tls.load_cert_chain(self.pki.client_cert, self.pki.client_key)
            self._tls = tls
        return self._tls

    async def healthy(self, session: aiohttp.ClientSession) -> bool:
        """etcd's own /health: true only with a leader and a quorum read that answers."""
        for _attempt in range(2):  # a kept-alive connection the member closed: ask anew
            if not self.running:
                return False
            try:
                url = f"{self.client_url}/health"
                async with session.get(url, ssl=self.client_tls()) as reply:
                    body: Any = await reply.json(content_type=None)
            except aiohttp.ServerDisconnectedError:
                continue
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                return False
            return isinstance(body, dict) and body.get("health") == "true"
        return False


class Etcd:
    """The etcd cluster: `members` are (name, address) pairs, one member by default."""

    def __init__(
        self, workdir: Path, members: Sequence[tuple[str, str]] = (("cp-1", "127.0.0.1"),)
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.members = {
            name: EtcdMember(name, address, self.workdir / name) for name, address in members
        }

    @property
    def first(self) -> EtcdMember:
        return next(iter(self.members.values()))

    @property
    def client_url(self) -> str:
        return self.first.client_url

    @property
    def ca_path(self) -> Path:
        return self.first.pki.ca

    @property
    def cert_path(self) -> Path:
        return self.first.pki.client_cert

    @property
    def key_path(self) -> Path:
        return self.first.pki.client_key

    @property
    def data_dir(self) -> Path:
        return self.first.data_dir

    def member(self, name: str) -> EtcdMember:
        try:
            return self.members[name]
        except KeyError:
            known = ", ".join(self.members)
            raise EtcdError(f"no etcd member {name!r} (members: {known})") from None

    def kubeadm_files(self, member: str | None = None) -> dict[str, Path]:
        """kubeadm's file names under /etc/kubernetes/pki/etcd -> that member's files."""
        return (self.member(member) if member else self.first).pki.kubeadm_files()

    def etcdctl_args(self) -> list[str]:
        endpoints = ",".join(m.client_url for m in self.members.values())
        return [
            f"--endpoints={endpoints}",
            f"--cacert={self.ca_path}",
            f"--cert={self.cert_path}",
            f"--key={self.key_path}",
        ]

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members.values())

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._write_pki)
        for _attempt in range(START_ATTEMPTS):
            for member in self.members.values():
                member.choose_ports()
                empty_dir(member.data_dir)  # a fresh cluster every try
            initial = self.initial_cluster()
            await asyncio.gather(*(m.spawn(initial, state="new") for m in self.members.values()))
            if await self._all_healthy():
                await self._seed()
                return
            await self.stop()  # most likely a port was taken between probe and bind
        raise EtcdError(f"etcd did not start; see the etcd.log files under {self.workdir}")

    async def stop(self) -> None:
        # Members stopped together wait seconds on each other for a leader handover that
        # cannot happen; a cluster being thrown away is killed.
        await asyncio.gather(*(m.stop(at_once=True) for m in self.members.values()))

    async def stop_member(self, name: str) -> None:
        await self.member(name).stop()

    async def start_member(self, name: str) -> None:
        """Start a stopped member on its old ports and data dir, as the kubelet restarts the
        static pod; it serves once it can reach a quorum again."""
        member = self.member(name)
        if member.running:
            return
        await member.spawn(self.initial_cluster(), state="existing")

    async def healthy_members(
        self, session: aiohttp.ClientSession | None = None
    ) -> dict[str, bool]:
        """Each member's own /health; pass a `session` to keep its connections between asks."""
        if session is None:
            async with health_session() as own:
                return await self.healthy_members(own)
        members = dict(self.members)  # a member may join (testbed/cpjoin.py) while we ask
        answers = await asyncio.gather(*(m.healthy(session) for m in members.values()))
        return dict(zip(members, answers, strict=True))

    def has_quorum(self, health: dict[str, bool]) -> bool:
        return sum(health.values()) > len(self.members) // 2

    async def etcdctl(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            ETCDCTL,
            *self.etcdctl_args(),
            *args,
            env={**os.environ, "ETCDCTL_API": "3"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            raise EtcdError(f"etcdctl {' '.join(args)}: {err.decode().strip()}")
        return out.decode()

    def _write_pki(self) -> None:
        ca = write_etcd_ca(self.workdir / "ca")
        for member in self.members.values():
            member.workdir.mkdir(parents=True, exist_ok=True)
            member.pki = write_member_pki(
                member.workdir / "pki", ca=ca, member=member.name, address=member.address
            )

    async def _all_healthy(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if any(not member.running for member in self.members.values()):
                return False
            with contextlib.suppress(EtcdError):
                if all((await self.healthy_members()).values()):
                    return True
            await asyncio.sleep(0.05)
        return False

    async def _seed(self) -> None:
        for key, value in SEED_KEYS.items():
            await self.etcdctl("put", key, value)


def health_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S))
