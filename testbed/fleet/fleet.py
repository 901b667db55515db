"""`Fleet`: every node of the fake cluster as a real sshd on its own loopback address, with its
own host key, shims on its PATH, a call log and fault switches.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from testbed.apiserver import FakeApiServer, NodeSpec
from testbed.apiserver.nodes import build_node
from testbed.daemons import free_port
from testbed.fleet import keys, layout, sshd
from testbed.fleet.account import fleet_account, own_as_root
from testbed.fleet.control import ControlEndpoint
from testbed.fleet.etcd_image import install_etcd_image
from testbed.fleet.etcd_manifest import etcd_manifest
from testbed.fleet.mirrors import seed_mirror_pods
from testbed.fleet.shims.pki import issue_leaf

if TYPE_CHECKING:
    from testbed.etcd import Etcd

PORT_ATTEMPTS = 5


@dataclass
class FleetNode:
    name: str
    address: str
    port: int
    host_key_fingerprint: str
    state_dir: Path
    role: str = "worker"
    host_public_key: str = ""


@dataclass(frozen=True)
class Call:
    argv: list[str]
    time: float
    node: str = ""


class Fleet:
    """Start with `await start()`; `nodes` are (name, address, role) triples."""

    def __init__(
        self,
        workdir: Path,
        nodes: Sequence[tuple[str, str, str]],
        apiserver: FakeApiServer | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.apiserver = apiserver
        self._specs = list(nodes)
        self.nodes: dict[str, FleetNode] = {}
        self.user = ""
        self.client_key_path = self.workdir / "client" / "id_ed25519"
        self.known_hosts_path = self.workdir / "known_hosts"
        self.user_ca_key_path = self.workdir / "user-ca" / "user_ca"
        self.public_dir = self.workdir / "public"
        self._remove_public = False
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._configs: dict[str, sshd.SshdConfig] = {}
        self._control = ControlEndpoint(apiserver)

    @property
    def control(self) -> ControlEndpoint:
        """The shims' way to the testbed process (testbed/cpjoin.py adds a route to it)."""
        return self._control

    @property
    def client_public_key(self) -> str:
        return (
            self.client_key_path.with_name(self.client_key_path.name + ".pub").read_text().strip()
        )

    @property
    def user_ca_public_key_path(self) -> Path:
        return self.user_ca_key_path.with_name(self.user_ca_key_path.name + ".pub")

    async def start(self) -> None:
        account = await asyncio.to_thread(fleet_account)
        self.user = account.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        for private in ("client", "user-ca", "hostkeys", "sshd"):  # keys and configs: root only
            (self.workdir / private).mkdir(mode=0o700, exist_ok=True)
        self.public_dir, self._remove_public = layout.public_root(self.workdir, account)
        await self._control.start()
        await asyncio.gather(
            keys.generate_ed25519(self.client_key_path, "kubegate-testbed-client"),
            keys.generate_ed25519(self.user_ca_key_path, "kubegate-testbed-user-ca"),
        )
        authorized = self.public_dir / "authorized_keys"
        authorized.write_text(self.client_public_key + "\n")
        authorized.chmod(0o644)
        launcher = layout.install_shims(self.public_dir)
        cluster_dir = self.public_dir / "cluster"
        cluster_dir.mkdir(exist_ok=True)
        (cluster_dir / "tokens.json").write_text("{}")
        layout.chown_tree(cluster_dir, account)
        existing = self._existing_nodes()
        for name, address, role in self._specs:
            state_dir = self.public_dir / "nodes" / name
            config = self._node_config(name, address, role, cluster_dir)
            layout.prepare_node(
                state_dir,
                config=config,
                kubelet_version=existing.get(name),
                launcher=launcher,
                account=account,
            )
            self.nodes[name] = FleetNode(name, address, 0, "", state_dir, role)
            if self.apiserver is not None and role == "control-plane" and name in existing:
                seed_mirror_pods(self.apiserver, name)
        await asyncio.gather(*(self._start_node(node, authorized) for node in self.nodes.values()))
        self._write_known_hosts()

    async def stop(self) -> None:
        await sshd.terminate(*self._processes.values())
        self._processes.clear()
        await self._control.stop()
        if self._remove_public:
            shutil.rmtree(self.public_dir, ignore_errors=True)

    def attach_etcd(
        self, etcd: Etcd, node: str | None = None, *, etcd_version: str = "3.6"
    ) -> None:
        """Give each control plane that has an etcd member of its name (or just `node`) that
        member's certs under kubeadm's names, and point its etcd container's (crictl shim's)
        https://127.0.0.1:2379 at that member, as kubeadm's stacked etcd listens locally.
        `etcd_version` is the etcd image's: from 3.6 etcdctl has no `snapshot status`."""
        image = install_etcd_image(self.public_dir)
        names = [node] if node else [n for n in self.nodes if n in etcd.members]
        if not names:  # a lone member named otherwise: the first control plane's
            names = [next(n.name for n in self.nodes.values() if n.role == "control-plane")]
        for name in names:
            member = etcd.members.get(name, etcd.first)
            state_dir = self.nodes[name].state_dir
            pki = state_dir / "root/etc/kubernetes/pki/etcd"
            for target, source in member.pki.kubeadm_files().items():
                shutil.copyfile(source, pki / target)
            # The API server's etcd client certificate, which `kubeadm init phase certs
            # apiserver-etcd-client` signs with the etcd CA: it waits for that CA, as here.
            client = pki.parent / "apiserver-etcd-client"
            issue_leaf(str(client), "apiserver-etcd-client", str(pki / "ca"), days=300)
            config_path = state_dir / "config.json"
            config = json.loads(config_path.read_text())
            config["etcd_endpoint"] = member.client_url
            config["etcd_image"] = {"bin": str(image), "version": etcd_version}
            manifest = state_dir / "root/etc/kubernetes/manifests/etcd.yaml"
            if manifest.exists():
                manifest.write_text(
                    etcd_manifest(
                        name=member.name,
                        client_url=member.client_url,
                        peer_url=member.peer_url,
                        initial_cluster=etcd.initial_cluster(),
                    )
                )
            config_path.write_text(json.dumps(config, indent=2))
            if sshd.can_use_mount_namespaces():
                own_as_root(pki)  # kubeadm's etcd keys are root's 0600, as every node file is
                for path in (client.with_suffix(".crt"), client.with_suffix(".key")):
                    os.chown(path, 0, 0)
            else:
                layout.chown_tree(pki, fleet_account())
                for path in (client.with_suffix(".crt"), client.with_suffix(".key")):
                    layout.chown_tree(path, fleet_account())
            for path in pki.iterdir():
                path.chmod(0o600)

    def calls(self, node: str) -> list[Call]:
        lines = (self.nodes[node].state_dir / "calls.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        return [Call(r["argv"], r["time"], r.get("node", node)) for r in records]

    def node_state(self, node: str) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.nodes[node].state_dir / "state.json").read_text())
        return state

    def fail(
        self,
        node: str,
        command: str,
        exit_code: int = 1,
        stderr: str = "",
        times: int | None = None,
    ) -> None:
        """Make `command` (e.g. "kubeadm", or "kubeadm upgrade node" to match the argv prefix)
        exit with `exit_code` and `stderr`; `times` None means every call until cleared."""
        fault = {"action": "fail", "exit_code": exit_code, "stderr": stderr, "remaining": times}
        self._set_fault(node, command, fault)

    def hang(self, node: str, command: str, times: int | None = None) -> None:
        """Make `command` block until the fault is cleared or its session goes away."""
        self._set_fault(node, command, {"action": "hang", "remaining": times})

    def clear_faults(self, node: str | None = None) -> None:
        for name in [node] if node else list(self.nodes):
            self._write_faults(name, {})

    async def kill_sshd(self, node: str) -> None:
        """Kill the node's sshd and every session it serves, as a crashed host would."""
        process = self._processes.pop(node, None)
        if process is not None:
            await sshd.terminate(process)

    async def restart_sshd(self, node: str) -> None:
        """Bring the node's sshd back, on its old port when it is still free."""
        await self.kill_sshd(node)
        await self._spawn(self.nodes[node], self._configs[node])
        self._write_known_hosts()

    def _existing_nodes(self) -> dict[str, str]:
        if self.apiserver is None:
            return {}
        return {
            n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"]
            for n in self.apiserver.objects.list("v1", "nodes")
        }

    def _node_config(self, name: str, address: str, role: str, cluster_dir: Path) -> dict[str, Any]:
        apiserver: dict[str, Any] | None = None
        node_object: dict[str, Any] | None = None
        ca_hash = ""
        if self.apiserver is not None:
            apiserver = {
                "url": self.apiserver.url,
                "token": self.apiserver.token,
                "ca": str(self.apiserver.ca_path),
            }
            ca_hash = discovery_hash(self.apiserver.ca_path)
            position = int(address.rsplit(".", 1)[1])
            spec = NodeSpec(
                name=name, role="control-plane" if role == "control-plane" else "worker"
            )
            node_object = build_node(spec, position)
            node_object["status"]["addresses"][0]["address"] = address
        return {
            "name": name,
            "role": role,
            "address": address,
            "apiserver": apiserver,
            "node_object": node_object,
            "ca_cert_hash": ca_hash,
            "cluster_dir": str(cluster_dir),
            "etcd_endpoint": None,
            "control": self._control.settings(),
            "kubernetes_version": self.apiserver.version if self.apiserver else None,
        }

    async def _start_node(self, node: FleetNode, authorized: Path) -> None:
        host_key = await keys.generate_ed25519(
            self.workdir / "hostkeys" / node.name / "ssh_host_ed25519_key", f"root@{node.name}"
        )
        node.host_public_key = host_key.with_name(host_key.name + ".pub").read_text().strip()
        node.host_key_fingerprint = keys.fingerprint(node.host_public_key)
        (self.workdir / "sshd").mkdir(exist_ok=True)
        mounts, environment = sshd.node_session(
            node.name, node.state_dir, layout.NODE_PATHS, self.user
        )
        sshd.prepare_mount_points(mounts)
        config = sshd.SshdConfig(
            address=node.address,
            port=0,
            host_key=host_key,
            authorized_keys=authorized,
            user_ca_public_key=self.user_ca_public_key_path,
            user=self.user,
            environment=environment,
            mounts=mounts,
            hostname=sshd.node_hostname(node.state_dir),
        )
        await self._spawn(node, config)

    async def _spawn(self, node: FleetNode, config: sshd.SshdConfig) -> None:
        last_error: Exception | None = None
        for _attempt in range(PORT_ATTEMPTS):
            port = config.port or free_port(node.address)
            config = dataclasses.replace(config, port=port)
            try:
                process = await sshd.spawn(
                    config,
                    self.workdir / "sshd" / f"{node.name}.conf",
                    self.workdir / "sshd" / f"{node.name}.log",
                )
            except sshd.SshdError as error:
                last_error = error  # most likely another testbed took the port meanwhile
                config = dataclasses.replace(config, port=0)
                continue
            self._processes[node.name], self._configs[node.name] = process, config
            node.port = port
            return
        raise sshd.SshdError(f"could not start sshd for {node.name}: {last_error}")

    def _set_fault(self, node: str, command: str, fault: dict[str, Any]) -> None:
        faults = self._read_faults(node)
        faults[command] = fault
        self._write_faults(node, faults)

    def _read_faults(self, node: str) -> dict[str, Any]:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            faults: dict[str, Any] = json.loads(
                (self.nodes[node].state_dir / "faults.json").read_text()
            )
            return faults
        return {}

    def _write_faults(self, node: str, faults: dict[str, Any]) -> None:
        path = self.nodes[node].state_dir / "faults.json"
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(faults))
        layout.chown_tree(partial, fleet_account())
        partial.replace(path)  # a shim never reads half a file

    def _write_known_hosts(self) -> None:
        lines = [
            keys.known_hosts_line(n.address, n.port, n.host_public_key) for n in self.nodes.values()
        ]
        self.known_hosts_path.write_text("\n".join(lines) + "\n")
        self.known_hosts_path.chmod(0o644)


def apiserver_nodes(apiserver: FakeApiServer) -> list[tuple[str, str, str]]:
    """(name, InternalIP, role) of every Node the fake apiserver holds: a fleet for it."""
    nodes = []
    for node in apiserver.objects.list("v1", "nodes"):
        labels = node["metadata"].get("labels", {})
        role = "control-plane" if "node-role.kubernetes.io/control-plane" in labels else "worker"
        addresses = node["status"]["addresses"]
        address = next(a["address"] for a in addresses if a["type"] == "InternalIP")
        nodes.append((node["metadata"]["name"], address, role))
    return nodes


def discovery_hash(ca_path: Path) -> str:
    """kubeadm's --discovery-token-ca-cert-hash: sha256 of the CA's SubjectPublicKeyInfo."""
    certificate = x509.load_pem_x509_certificate(ca_path.read_bytes())
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()
