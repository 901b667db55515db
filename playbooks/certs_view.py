"""The `/kube certs` answer: observe every control plane's `kubeadm certs check-expiration`
(I/O), then say it as the compact tables Slack shows (pure).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from playbooks.base import ClusterHandle
from playbooks.cert_checks import NodeExpiry, check_expiration, control_plane_targets
from playbooks.certs_table import expiry_lines
from playbooks.errors import OperationError


@dataclass(frozen=True)
class CertsSnapshot:
    """Each control plane's expiry table, in the inventory's order, as far as it could be read."""

    cluster: str
    expiries: list[NodeExpiry]
    # Why the rest could not be read (no control plane, SSH, kubeadm's output…), in words.
    problem: str | None = None


async def observe_certs(cluster: ClusterHandle) -> CertsSnapshot:
    expiries: list[NodeExpiry] = []
    try:
        for target in await control_plane_targets(cluster):
            expiries.append(await check_expiration(cluster, target))
    except OperationError as error:
        return CertsSnapshot(cluster.name, expiries, error.message)
    return CertsSnapshot(cluster.name, expiries)


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
    return "\n".join(lines)
