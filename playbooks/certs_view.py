"""The `/kube certs` answer: observe every control plane's `kubeadm certs check-expiration`
and every node's kubelet client certificate (I/O), then say it as the compact tables Slack
shows (pure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from playbooks.base import ClusterHandle
from playbooks.cert_checks import (
    NodeExpiry,
    check_expiration,
    control_plane_targets,
    kubelet_expiries,
)
from playbooks.certs_table import expiry_lines, kubelet_lines
from playbooks.errors import OperationError


@dataclass(frozen=True)
class CertsSnapshot:
    """Each control plane's expiry table, in the inventory's order, as far as it could be read."""

    cluster: str
    expiries: list[NodeExpiry]
    # Why the rest could not be read (no control plane, SSH, kubeadm's output…), in words.
    problem: str | None = None
    kubelets: list[NodeExpiry] = field(default_factory=list)  # every node's, workers too
    kubelet_problems: list[str] = field(default_factory=list)  # one sentence per node

    def all_expiries(self) -> list[NodeExpiry]:
        """What the expiry warnings watch: kubeadm's certificates and every kubelet's."""
        return [*self.expiries, *self.kubelets]


async def observe_certs(cluster: ClusterHandle) -> CertsSnapshot:
    expiries: list[NodeExpiry] = []
    problem = None
    try:
        for target in await control_plane_targets(cluster):
            expiries.append(await check_expiration(cluster, target))
    except OperationError as error:
        problem = error.message
    try:
        kubelets, kubelet_problems = await kubelet_expiries(cluster)
    except OperationError as error:
        kubelets, kubelet_problems = [], [error.message]
    return CertsSnapshot(cluster.name, expiries, problem, kubelets, kubelet_problems)


def certs_answer(seen: CertsSnapshot, *, now: datetime, warn_within: int) -> str:
    """The ephemeral answer: a header, one table per control plane, and what went wrong. Pure."""
    lines = [
        f"*Certificates of {seen.cluster}* (`kubeadm certs check-expiration`, "
        f"⚠️ within {warn_within} days)"
    ]
    for expiry in seen.expiries:
        lines += expiry_lines(expiry.node, expiry.table, now=now, warn_within=warn_within)
    if seen.problem is not None:
        lines.append(f"kubegate could not read the certificates: {seen.problem}")
    if seen.kubelets:
        kubelets = [(e.node, e.table.certificates[0].expires) for e in seen.kubelets]
        lines += kubelet_lines(kubelets, now=now, warn_within=warn_within)
    lines += [f"kubegate could not read a kubelet certificate: {p}" for p in seen.kubelet_problems]
    return "\n".join(lines)
