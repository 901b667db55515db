"""How to reach each node of a cluster over SSH: defaults per cluster, overrides per node.

By default a node is reached at its InternalIP from the API; the config may name another
address or port. Pure data and lookups; the bot loads it from the YAML config.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from commands import parse_duration
from playbooks.kube import NodeView
from playbooks.ssh import SshTarget

API_SERVER_PORT = 6443  # kubeadm's default bindPort for each control plane's API server


def duration(value: object) -> timedelta:
    """A duration from YAML: `30m`, `2h`, `1h30m`, `7d`, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    return parse_duration(str(value))


YamlDuration = Annotated[timedelta, BeforeValidator(duration)]


class NodeAccess(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    package_manager: Literal["apt", "dnf"] | None = None
    # A control plane's own API server (not the load balancer): each is read on its own, as
    # they differ mid-upgrade. Default: https://<InternalIP>:6443, where kubeadm puts it.
    api_server: str | None = None


class PackageRepository(BaseModel):
    """Where the kube packages come from, one repository per minor as pkgs.k8s.io serves them;
    `{minor}` becomes `v1.32`. Point these at a mirror for air-gapped clusters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    apt: str = "https://pkgs.k8s.io/core:/stable:/{minor}/deb/"
    dnf: str = "https://pkgs.k8s.io/core:/stable:/{minor}/rpm/"
    # pkgs.k8s.io signs every minor's repository with the same key: the keyring stays.
    apt_keyring: str = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"

    def url(self, manager: Literal["apt", "dnf"], minor: str) -> str:
        template = self.apt if manager == "apt" else self.dnf
        return template.replace("{minor}", minor)


class SshSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)
    sudo: bool = False
    known_hosts: Path | None = None  # pinned host keys; or known_hosts_vault
    known_hosts_vault: str | None = None  # KV v2 path whose `known_hosts` field holds them
    private_key: Path | None = None  # or private_key_vault
    private_key_vault: str | None = None  # KV v2 path whose `private_key` field holds it
    sign_with_vault: bool = False  # log in with a short-lived certificate from Vault's SSH CA
    certificate_ttl: YamlDuration = timedelta(minutes=10)  # asked of Vault; renewed before
    connect_timeout: float = 10.0
    command_timeout: float = 600.0
    max_parallel: int = Field(default=64, ge=1)


class EtcdSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = "https://127.0.0.1:2379"
    ca: str = "/etc/kubernetes/pki/etcd/ca.crt"
    cert: str = "/etc/kubernetes/pki/etcd/healthcheck-client.crt"
    key: str = "/etc/kubernetes/pki/etcd/healthcheck-client.key"
    snapshot_dir: str = "/var/lib/kubegate/etcd"  # on the control-plane node, before the copy
    # kubeadm runs etcd as a static pod and installs no etcdctl/etcdutl on the host: by default
    # they run in the etcd container (`crictl exec`), writing into its data dir, the one host
    # directory it mounts. Name host binaries here to use those instead (snapshots go to
    # snapshot_dir then).
    etcdctl: str | None = None
    etcdutl: str | None = None
    data_dir: str = "/var/lib/etcd"


class NewNodeSettings(BaseModel):
    """What `provision node` puts on a node once it has joined (nothing by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[str] = Field(default_factory=list)  # `key=value:Effect` or `key:Effect`


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ssh: SshSettings = Field(default_factory=SshSettings)
    nodes: dict[str, NodeAccess] = Field(default_factory=dict)
    package_manager: Literal["apt", "dnf"] = "apt"
    package_repository: PackageRepository = Field(default_factory=PackageRepository)
    control_planes: list[str] | None = None  # default: nodes labelled control-plane
    node_subnet: str | None = None
    etcd: EtcdSettings = Field(default_factory=EtcdSettings)
    new_nodes: NewNodeSettings = Field(default_factory=NewNodeSettings)
    # Certificate rotation: how long a static pod's manifest stays out (the kubelet re-reads
    # its manifest directory every 20 s), where it waits, and how long its pod may take.
    static_pod_pause: YamlDuration = timedelta(seconds=20)
    static_pod_ready_timeout: YamlDuration = timedelta(minutes=5)
    static_pod_holding_dir: str = "/etc/kubernetes/kubegate-held-manifests"
    certs_vault_path: str = (
        "kubegate/pki"  # KV v2; each node's certificates at <path>/<cluster>/<node>
    )
    # Opt-in: `/kube backup pki` keeps the cluster's CA keys and sa.key in Vault at
    # <certs_vault_path>/<cluster>/cluster-pki, for recovery and joining control planes.
    pki_in_vault: bool = False

    def apiserver_url(self, target: SshTarget) -> str:
        """The node's own API server, as kubeadm's advertise address and bind port give it."""
        access = self.nodes.get(target.node, NodeAccess())
        return (access.api_server or f"https://{target.host}:{API_SERVER_PORT}").rstrip("/")

    def access_of(self, name: str, address: str | None) -> NodeAccess:
        """The inventory's entry for `name`; without one, the entry that lists `address` under
        another name: a new host is added to the inventory before it has its node name (as
        `spare-1`, or its hostname), and its port and user hold whatever it is called later."""
        if name in self.nodes or address is None:
            return self.nodes.get(name, NodeAccess())
        listing = [access for access in self.nodes.values() if access.address == address]
        return listing[0] if len(listing) == 1 else NodeAccess()

    def target(self, node: NodeView) -> SshTarget | None:
        """Where to SSH for this node; None when it has no address at all."""
        access = self.access_of(node.name, node.internal_ip)
        address = access.address or node.internal_ip
        if address is None:
            return None
        return SshTarget(
            node=node.name,
            host=address,
            port=access.port or self.ssh.port,
            user=access.user or self.ssh.user,
            sudo=self.ssh.sudo,
        )

    def target_for_address(self, name: str, address: str) -> SshTarget:
        """Where to SSH for a host that is not a Node yet: the address asked for, with the
        port and user the inventory gives that name or that address (or the defaults). It is
        not that Node yet, so it need not prove it is."""
        access = self.access_of(name, address)
        return SshTarget(
            node=name,
            host=address,
            port=access.port or self.ssh.port,
            user=access.user or self.ssh.user,
            sudo=self.ssh.sudo,
            check_identity=False,
        )

    def control_plane_order(self, nodes: list[NodeView]) -> list[NodeView]:
        """Control planes in the inventory's order (else by name): the first one leads upgrades."""
        ours = [node for node in nodes if self.is_control_plane(node)]
        if self.control_planes is not None:
            rank = {name: index for index, name in enumerate(self.control_planes)}
            return sorted(ours, key=lambda node: rank[node.name])
        return sorted(ours, key=lambda node: node.name)

    def is_control_plane(self, node: NodeView) -> bool:
        if self.control_planes is not None:
            return node.name in self.control_planes
        return "control-plane" in node.roles or "master" in node.roles

    def api_server_of(self, node: NodeView) -> str | None:
        """Where this control plane's own API server answers; None when it has no address."""
        access = self.nodes.get(node.name, NodeAccess())
        if access.api_server:
            return access.api_server.rstrip("/")
        if node.internal_ip is None:
            return None
        host = f"[{node.internal_ip}]" if ":" in node.internal_ip else node.internal_ip
        return f"https://{host}:{API_SERVER_PORT}"

    def package_manager_of(self, node: str) -> Literal["apt", "dnf"]:
        access = self.nodes.get(node)
        return (access.package_manager if access else None) or self.package_manager

    def in_node_subnet(self, address: str) -> bool:
        if self.node_subnet is None:
            return True
        return ipaddress.ip_address(address) in ipaddress.ip_network(self.node_subnet, strict=False)
