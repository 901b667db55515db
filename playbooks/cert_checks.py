"""Asking control planes about their certificates over SSH: which nodes, what
`kubeadm certs check-expiration` says, and the renewed public certificates (never a key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from playbooks.base import ClusterHandle, PlanError
from playbooks.certs_table import (
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
