"""`Etcd`: the real etcd from Debian's etcd-server, with client TLS like a kubeadm cluster's, a
data dir and ports of its own, and a few keys put in at start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from testbed.daemons import free_port, stop_daemon
from testbed.etcd.certs import EtcdPki, write_etcd_pki

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
READY_TIMEOUT_S = 30.0
SEED_KEYS = {
    "/registry/namespaces/default": '{"kind":"Namespace","metadata":{"name":"default"}}',
    "/registry/namespaces/kube-system": '{"kind":"Namespace","metadata":{"name":"kube-system"}}',
    "/registry/configmaps/kube-system/kubeadm-config": '{"kind":"ConfigMap"}',
}


class EtcdError(RuntimeError):
    pass


class Etcd:
    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir).resolve()
        self.data_dir = self.workdir / "data"
        self.pki: EtcdPki | None = None
        self.client_port = 0
        self.peer_port = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def client_url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    @property
    def ca_path(self) -> Path:
        return self._pki().ca

    @property
    def cert_path(self) -> Path:
        return self._pki().client_cert

    @property
    def key_path(self) -> Path:
        return self._pki().client_key

    def kubeadm_files(self) -> dict[str, Path]:
        """kubeadm's file names under /etc/kubernetes/pki/etcd -> our files."""
        pki = self._pki()
        return {
            "ca.crt": pki.ca,
            "server.crt": pki.server_cert,
            "server.key": pki.server_key,
            "healthcheck-client.crt": pki.client_cert,
            "healthcheck-client.key": pki.client_key,
        }

    def etcdctl_args(self) -> list[str]:
        return [
            f"--endpoints={self.client_url}",
            f"--cacert={self.ca_path}",
            f"--cert={self.cert_path}",
            f"--key={self.key_path}",
        ]

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = await asyncio.to_thread(write_etcd_pki, self.workdir / "pki")
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        for _attempt in range(5):
            self.client_port, self.peer_port = free_port(), free_port()
            if await self._spawn():
                await self._seed()
                return
        raise EtcdError(f"etcd did not start; see {self.workdir / 'etcd.log'}")

    async def stop(self) -> None:
        await stop_daemon(self._process)
        self._process = None

    async def etcdctl(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            ETCDCTL, *self.etcdctl_args(), *args,
            env={**os.environ, "ETCDCTL_API": "3"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        if process.returncode != 0:
            raise EtcdError(f"etcdctl {' '.join(args)}: {err.decode().strip()}")
        return out.decode()

    def _pki(self) -> EtcdPki:
        if self.pki is None:
            raise EtcdError("etcd is not started")
        return self.pki

    async def _spawn(self) -> bool:
        pki = self._pki()
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            "--name=testbed", f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}", f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=testbed={peer}", "--initial-cluster-state=new",
            f"--cert-file={pki.server_cert}", f"--key-file={pki.server_key}",
            f"--trusted-ca-file={pki.ca}", "--client-cert-auth=true",
            "--logger=zap", "--log-outputs=stderr", "--snapshot-count=10000",
        ]  # fmt: skip
        with (self.workdir / "etcd.log").open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                ETCD, *args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                return False  # most likely a port was taken between probe and bind
            with contextlib.suppress(EtcdError):
                await self.etcdctl("endpoint", "health", "--command-timeout=1s")
                return True
            await asyncio.sleep(0.05)
        await self.stop()
        return False

    async def _seed(self) -> None:
        for key, value in SEED_KEYS.items():
            await self.etcdctl("put", key, value)
