"""What `kubeadm join --control-plane` does beyond the joining host, on the testbed's own world:
the check-etcd phase (every member healthy, else no member is added), then the
control-plane-join phase: `etcdctl member add` on the real etcd cluster and a new member started
with initial-cluster-state=existing on the host's /var/lib/etcd, the etcd and kube-apiserver
static pods written, the host's own kube-apiserver (its serving certificate signed by the CA
placed on the host) started on <address>:6443 and put behind the load balancer, and the mirror
pods its kubelet creates.

Modelled on kubernetes/kubernetes cmd/kubeadm/app/cmd/phases/join/checketcd.go ("Check that the
etcd cluster is healthy"), controlplanejoin.go (phase etcd: "Add a new local etcd member",
etcdphase.CreateStackedEtcdStaticPodManifestFile: MemberAdd, then the static pod with
--initial-cluster-state=existing) and the docs "Creating Highly Available Clusters with
kubeadm" (the new API server is added to the load balancer's backends). The joining host's
shim (testbed/fleet/shims/join.py) asks for it over the fleet's control endpoint.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed.apiserver import FakeApiServer
from testbed.apiserver.endpoints import ApiServerEndpoint
from testbed.controlplanes import ControlPlane, ControlPlanes
from testbed.etcd import Etcd
from testbed.etcd.certs import EtcdCa, write_member_pki
from testbed.etcd.server import READY_TIMEOUT_S, EtcdError, EtcdMember
from testbed.fleet import Fleet
from testbed.fleet.account import fleet_account
from testbed.fleet.etcd_manifest import etcd_manifest
from testbed.fleet.layout import static_pod_manifest
from testbed.fleet.mirrors import seed_mirror_pods
from testbed.fleet.sshd import can_use_mount_namespaces
from testbed.loadbalancer import LoadBalancer

log = logging.getLogger(__name__)
API_SERVER_PORT = 6443  # kubeadm's default bindPort
PKI = "etc/kubernetes/pki"
MANIFESTS = "etc/kubernetes/manifests"
# kubeadm retries `member add` with exponential backoff (cmd/kubeadm/app/util/etcd/etcd.go:
# etcdBackoff, 50 ms doubling, 9 steps): etcd's strict reconfiguration check answers "unhealthy
# cluster" until every member has been connected for its 5 s health interval
# (server/etcdserver/server.go mayAddMember), as right after the previous control plane joined.
MEMBER_ADD_BACKOFF_S = [0.05 * 2**step for step in range(9)]


class JoinRefused(Exception):
    """kubeadm stops with this message; nothing of the control plane was added."""


@dataclass
class JoinedControlPlane:
    name: str
    apiserver_url: str
    etcd_client_url: str


class ControlPlaneJoins:
    """Serves the shim's `POST /control-plane-join` (phase `check-etcd`, then `join`)."""

    def __init__(
        self,
        *,
        apiserver: FakeApiServer,
        etcd: Etcd,
        kubelets: ControlPlanes,
        balancer: LoadBalancer | None,
        fleet: Fleet,
        on_joined: Callable[[], None] = lambda: None,
    ) -> None:
        self.apiserver, self.etcd, self.kubelets = apiserver, etcd, kubelets
        self.balancer, self.fleet = balancer, fleet
        self.on_joined = on_joined
        self.joined: list[JoinedControlPlane] = []
        self._lock = asyncio.Lock()

    async def handle(self, request: web.Request) -> web.Response:
        body: Any = await request.json()
        host, name = body.get("host"), body.get("name")
        if not isinstance(host, str) or host not in self.fleet.nodes or not isinstance(name, str):
            return web.json_response({"error": "host (a fleet node) and name needed"}, status=400)
        try:
            async with self._lock:
                if body.get("phase") == "check-etcd":
                    await self.check_etcd()
                    return web.json_response({"ok": True})
                joined = await self.join(host, name, int(body.get("bind_port") or API_SERVER_PORT))
        except JoinRefused as refusal:
            return web.json_response({"error": str(refusal)}, status=409)
        return web.json_response({"ok": True, "apiserver_url": joined.apiserver_url})

    async def check_etcd(self) -> None:
        if self.balancer is None:
            raise JoinRefused(
                "unable to add a new control plane instance to a cluster that doesn't have a "
                "stable controlPlaneEndpoint address"
            )
        health = await self.etcd.healthy_members()
        sick = [name for name, healthy in health.items() if not healthy]
        if sick:
            member = self.etcd.members[sick[0]]
            raise JoinRefused(
                "error execution phase check-etcd: etcd cluster is not healthy: failed to dial "
                f"endpoint {member.client_url} with maintenance client: context deadline exceeded"
            )

    async def join(self, host: str, name: str, port: int = API_SERVER_PORT) -> JoinedControlPlane:
        await self.check_etcd()
        node = self.fleet.nodes[host]
        root = node.state_dir / "root"
        self._check_placed_authorities(root)
        member = await self._add_etcd_member(name, node.address, root)
        endpoint = await self._start_apiserver(name, node.address, port, root)
        self._write_manifests(root, name, member)
        self._point_crictl_at(node.state_dir, member)
        plane = ControlPlane(name, endpoint, root)
        # Rebinding, never mutating: the kubelet loop may be iterating the old dicts.
        self.kubelets.planes = {**self.kubelets.planes, name: plane}
        plane.manifest_seen = self.kubelets._signature(plane)
        if self.balancer is not None:
            self.balancer.add_backend(name, lambda: (endpoint.host, endpoint.port))
        seed_mirror_pods(self.apiserver, name)
        joined = JoinedControlPlane(name, endpoint.url, member.client_url)
        self.joined.append(joined)
        log.info("control plane %s joined: %s, etcd %s", name, endpoint.url, member.client_url)
        self.on_joined()
        return joined

    def _check_placed_authorities(self, root: Path) -> None:
        """The shared CAs on the host must be the cluster's: with any other, the member's
        certificates are refused by its peers (x509: certificate signed by unknown authority)."""
        placed = (root / PKI / "etcd/ca.crt").read_bytes()
        if placed != self.etcd.ca_path.read_bytes():
            raise JoinRefused(
                "error execution phase control-plane-join/etcd: error creating local etcd static "
                "pod manifest file: x509: certificate signed by unknown authority"
            )
        if (root / PKI / "ca.crt").read_bytes() != self.apiserver.ca_path.read_bytes():
            raise JoinRefused(
                "error execution phase control-plane-prepare/certs: the ca.crt on this host is "
                "not the cluster's CA: x509: certificate signed by unknown authority"
            )

    async def _add_etcd_member(self, name: str, address: str, root: Path) -> EtcdMember:
        member = EtcdMember(name, address, self.etcd.workdir / name)
        member.data_dir = root / "var/lib/etcd"
        placed = root / PKI / "etcd"
        own = member.workdir / "pki"
        member.pki = await asyncio.to_thread(
            write_member_pki,
            own,
            ca=EtcdCa(placed / "ca.crt", placed / "ca.key"),
            member=name,
            address=address,
        )
        member.choose_ports()
        await self._member_add(name, member.peer_url)
        self.etcd.members = {**self.etcd.members, name: member}
        await member.spawn(self.etcd.initial_cluster(), state="existing")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (await self.etcd.healthy_members()).get(name):
            if time.monotonic() > deadline or not member.running:
                raise JoinRefused(
                    "error execution phase control-plane-join/etcd: the new etcd member did not "
                    f"become healthy; see {member.log_path}"
                )
            await asyncio.sleep(0.1)
        self._install_node_files(own, placed, [p.name for p in own.iterdir()])
        return member

    async def _member_add(self, name: str, peer_url: str) -> None:
        for wait in [*MEMBER_ADD_BACKOFF_S, None]:
            try:
                await self.etcd.etcdctl("member", "add", name, f"--peer-urls={peer_url}")
                return
            except EtcdError as error:
                if wait is None:
                    raise JoinRefused(
                        f"error execution phase control-plane-join/etcd: {error}"
                    ) from error
            await asyncio.sleep(wait)

    async def _start_apiserver(
        self, name: str, address: str, port: int, root: Path
    ) -> ApiServerEndpoint:
        cert, key = root / PKI / "apiserver.crt", root / PKI / "apiserver.key"
        await asyncio.to_thread(
            serving_certificate, root / PKI / "ca.crt", root / PKI / "ca.key", address, cert, key
        )
        self._own_files([cert, key])
        endpoint = ApiServerEndpoint(
            name,
            app_factory=self.apiserver._app,
            version=self.apiserver.version,
            host=address,
            port=port,  # the JoinConfiguration's localAPIEndpoint.bindPort
            on_change=self.apiserver._track_apiservers_down,
        )
        endpoint.use_certificate(cert, key)
        await endpoint.start(startup_delay=self.kubelets.apiserver_startup)
        self.apiserver.endpoints = {**self.apiserver.endpoints, name: endpoint}
        return endpoint

    def _write_manifests(self, root: Path, name: str, member: EtcdMember) -> None:
        manifests = root / MANIFESTS
        for pod in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            (manifests / f"{pod}.yaml").write_text(static_pod_manifest(pod, self.apiserver.version))
        (manifests / "etcd.yaml").write_text(
            etcd_manifest(
                name=name,
                client_url=member.client_url,
                peer_url=member.peer_url,
                initial_cluster=self.etcd.initial_cluster(),
            )
        )
        self._own_files(list(manifests.iterdir()), mode=0o600)

    def _point_crictl_at(self, state_dir: Path, member: EtcdMember) -> None:
        """The host's etcd container (the crictl shim) reaches its own member, with the etcd
        image the other control planes have."""
        first = next(n for n in self.fleet.nodes.values() if n.role == "control-plane")
        image = json.loads((first.state_dir / "config.json").read_text()).get("etcd_image")
        path = state_dir / "config.json"
        config = json.loads(path.read_text())
        config.update(etcd_endpoint=member.client_url, etcd_image=image)
        path.write_text(json.dumps(config, indent=2))

    def _install_node_files(self, source: Path, target: Path, names: list[str]) -> None:
        for file in names:
            if file not in ("ca.crt", "ca.key"):  # the placed CA stays as it was placed
                shutil.copyfile(source / file, target / file)
        self._own_files([target / file for file in names], mode=0o600)

    def _own_files(self, paths: list[Path], *, mode: int | None = None) -> None:
        """kubeadm writes as root, keys 0600: root's where sudo is real, else the fleet's."""
        for path in paths:
            if mode is not None or path.suffix == ".key":
                path.chmod(mode or 0o600)
            if os.geteuid() != 0:
                continue
            if can_use_mount_namespaces():
                os.chown(path, 0, 0)
            else:
                account = fleet_account()
                os.chown(path, account.uid, account.gid)


def serving_certificate(
    ca_cert: Path, ca_key: Path, address: str, cert_path: Path, key_path: Path
) -> None:
    """kube-apiserver's serving certificate as kubeadm's certs phase makes it on a joining
    control plane: signed by the placed cluster CA, for its advertise address."""
    authority = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey), "the testbed's cluster CA is EC"
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted({address, "127.0.0.1"})]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([*names, x509.DNSName("localhost")]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
        .sign(signer, hashes.SHA256())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
