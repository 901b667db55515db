"""Asking control planes about their certificates over SSH: which nodes, what
`kubeadm certs check-expiration` says, and the renewed public certificates (never a key).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from playbooks.base import ClusterHandle, PlanError
from playbooks.certs_table import (
    CertificateRow,
    CertsTableError,
    ExpiryTable,
    left_words,
    parse_check_expiration,
)
from playbooks.errors import OperationError
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.remote import RemoteCommand
from playbooks.ssh import SshTarget

CHECK_EXPIRATION = RemoteCommand.of("kubeadm", "certs", "check-expiration")
PKI_DIR = "/etc/kubernetes/pki"
# The leaf certificates `kubeadm certs renew all` re-signs, as files under the PKI directory.
# Public halves only: the kubeconfig files (admin.conf…) embed their private keys, so they are
# never read, and no `*.key` is ever named here (see public_certificate_paths).
RENEWED_CERTIFICATES = (
    "apiserver.crt",
    "apiserver-kubelet-client.crt",
    "apiserver-etcd-client.crt",
    "front-proxy-client.crt",
    "etcd/server.crt",
    "etcd/peer.crt",
    "etcd/healthcheck-client.crt",
)
# Prints each readable file as `==> name <==` and its text; a missing file prints nothing.
_PRINT_FILES = 'cd "$1" && shift && for f; do [ -f "$f" ] && printf "==> %s <==\\n" "$f" && cat -- "$f"; done; true'


class CertsReadError(OperationError):
    """A control plane's certificates could not be read; the message names the node."""


@dataclass(frozen=True)
class NodeExpiry:
    node: str
    table: ExpiryTable

    def soonest_words(self, now: datetime) -> str:
        soonest = self.table.soonest()
        if soonest is None:
            return f"{self.node}: no certificates listed"
        left = left_words(soonest.days_left(now))
        return (
            f"{self.node}: soonest {soonest.name}, expires {soonest.expires:%Y-%m-%d %H:%M} UTC "
            f"({left} left)"
        )


def certificate_holders(
    cluster: str, inventory: Inventory, nodes: list[NodeView], only: str | None = None
) -> list[SshTarget]:
    """The control planes in the inventory's order (or just `only`), each reachable over SSH;
    a PlanError saying why when there is none to ask. Pure."""
    ours = inventory.control_plane_order(nodes)
    if only is not None:
        if only not in {node.name for node in nodes}:
            raise PlanError(f"There is no node `{only}` in cluster {cluster}.")
        ours = [node for node in ours if node.name == only]
        if not ours:
            raise PlanError(
                f"{only} is not a control-plane node: kubeadm certificates live on "
                "control planes only. `/kube certs` lists them."
            )
    if not ours:
        raise PlanError(
            f"No control-plane node found in cluster {cluster}: "
            "set `control_planes` in the inventory."
        )
    targets = []
    for node in ours:
        target = inventory.target(node)
        if target is None:
            raise PlanError(
                f"kubegate does not know how to reach {node.name} over SSH: it has "
                "no InternalIP and no address in the inventory."
            )
        targets.append(target)
    return targets


async def control_plane_targets(cluster: ClusterHandle, only: str | None = None) -> list[SshTarget]:
    nodes = await cluster.kube.list_nodes()
    return certificate_holders(cluster.name, cluster.inventory, nodes, only)


async def check_expiration(cluster: ClusterHandle, target: SshTarget) -> NodeExpiry:
    ssh = await cluster.ssh()
    timeout = cluster.inventory.ssh.command_timeout
    result = await ssh.run(target, CHECK_EXPIRATION.argv, timeout=timeout)
    if not result.ok:
        raise CertsReadError(
            f"`{CHECK_EXPIRATION.label}` failed on {target.node} "
            f"(exit {result.exit_status}): {result.tail(3)}"
        )
    try:
        return NodeExpiry(target.node, parse_check_expiration(result.stdout))
    except CertsTableError as error:
        raise CertsReadError(f"{target.node}: {error}") from error


def public_certificate_paths(names: tuple[str, ...] = RENEWED_CERTIFICATES) -> tuple[str, ...]:
    """The files kubegate may read; refuses anything but a public certificate."""
    for name in names:
        if not name.endswith(".crt") or ".." in name or name.startswith("/"):
            raise ValueError(f"{name} is not a public certificate file under {PKI_DIR}")
    return names


def split_printed_files(text: str) -> dict[str, str]:
    """`==> name <==` sections -> {name: PEM text}. Pure."""
    files: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines(keepends=True):
        if line.startswith("==> ") and line.rstrip().endswith(" <=="):
            current = line.strip()[4:-4]
            files[current] = ""
        elif current is not None:
            files[current] += line
    return files


async def read_public_certificates(cluster: ClusterHandle, target: SshTarget) -> dict[str, str]:
    """The renewed leaf certificates' PEM text, by path under the PKI directory."""
    paths = public_certificate_paths()
    printing = RemoteCommand.script("print the renewed *.crt files", _PRINT_FILES, PKI_DIR, *paths)
    ssh = await cluster.ssh()
    result = await ssh.run(target, printing.argv, timeout=cluster.inventory.ssh.command_timeout)
    if not result.ok:
        raise CertsReadError(
            f"reading the certificates in {PKI_DIR} on {target.node} failed "
            f"(exit {result.exit_status})"
        )
    files = split_printed_files(result.stdout)
    return {name: pem for name, pem in files.items() if "PRIVATE KEY" not in pem}


# The kubelet's client certificate and key, one file (root's, 0600) on every node, workers too;
# kubeadm's expiry check does not list it (kubernetes.io/docs/tasks/administer-cluster/kubeadm/
# kubeadm-certs: "kubeadm cannot manage certificates signed by an external CA ... kubelet").
KUBELET_CLIENT_CERT = "/var/lib/kubelet/pki/kubelet-client-current.pem"
KUBELET_CLIENT = "kubelet-client"
# openssl prints only the certificate's end date: the key in the same file is never printed.
READ_KUBELET_EXPIRY = RemoteCommand.of(
    "openssl", "x509", "-noout", "-enddate", "-in", KUBELET_CLIENT_CERT
)


def parse_enddate(text: str) -> datetime:
    """`notAfter=Nov 30 05:01:58 2027 GMT` -> an aware UTC datetime. Pure."""
    value = text.strip().removeprefix("notAfter=")
    try:
        return datetime.strptime(value, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
    except ValueError as error:
        raise CertsTableError(f"openssl printed no end date: {text.strip()[:80]!r}") from error


def kubelet_table(expires: datetime) -> ExpiryTable:
    """The kubelet client certificate as an expiry table of one row, so it is shown and warned
    about as kubeadm's certificates are."""
    row = CertificateRow(KUBELET_CLIENT, expires, "", "ca", externally_managed=False)
    return ExpiryTable(certificates=(row,), authorities=())


async def kubelet_client_expiry(cluster: ClusterHandle, target: SshTarget) -> NodeExpiry:
    ssh = await cluster.ssh()
    timeout = cluster.inventory.ssh.command_timeout
    result = await ssh.run(target, READ_KUBELET_EXPIRY.argv, timeout=timeout)
    if not result.ok:
        raise CertsReadError(
            f"reading {KUBELET_CLIENT_CERT} on {target.node} failed (exit {result.exit_status}): "
            f"{result.tail(2)}"
        )
    try:
        return NodeExpiry(target.node, kubelet_table(parse_enddate(result.stdout)))
    except CertsTableError as error:
        raise CertsReadError(f"{target.node}: {error}") from error


async def kubelet_expiries(cluster: ClusterHandle) -> tuple[list[NodeExpiry], list[str]]:
    """Every node's kubelet client certificate expiry, in name order, and what could not be read
    (one sentence per node), asked of all nodes at once."""
    nodes = sorted(await cluster.kube.list_nodes(), key=lambda node: node.name)
    targets = [t for node in nodes if (t := cluster.inventory.target(node)) is not None]
    unreachable = [
        f"{n.name}: no address to reach it" for n in nodes if cluster.inventory.target(n) is None
    ]
    read = await asyncio.gather(
        *(kubelet_client_expiry(cluster, target) for target in targets), return_exceptions=True
    )
    found = [expiry for expiry in read if isinstance(expiry, NodeExpiry)]
    problems = [e.message for e in read if isinstance(e, OperationError)]
    for error in read:
        if isinstance(error, BaseException) and not isinstance(error, OperationError):
            raise error
    return found, unreachable + problems
