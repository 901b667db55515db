"""Kubernetes versions and the skew rules an upgrade must obey. Pure: no I/O, only decisions."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """`v1.31.2` (or a kubelet's `v1.31.2+k3s1`); None when it is not a version."""
        match = _VERSION.match(text.strip())
        if match is None:
            return None
        return cls(int(match[1]), int(match[2]), int(match[3]))

    @property
    def minor_line(self) -> str:
        return f"v{self.major}.{self.minor}"

    @property
    def next_minor(self) -> Version:
        return Version(self.major, self.minor + 1, 0)

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    @property
    def package(self) -> str:
        """How pkgs.k8s.io numbers it: `1.31.3` (apt adds `-*`, dnf matches the prefix)."""
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Skew:
    """What the skew rules read: each API server's version (by control plane) and, for an
    upgrade that moves the API servers, the oldest kubelet in the cluster."""

    api_servers: dict[str, Version]
    oldest_kubelet: tuple[str, Version] | None = None

    @property
    def oldest(self) -> tuple[str, Version]:
        return min(self.api_servers.items(), key=lambda item: item[1])

    @property
    def newest(self) -> tuple[str, Version]:
        return max(self.api_servers.items(), key=lambda item: item[1])


def skew_problems(
    *, node: str, kubelet: Version, target: Version, skew: Skew, procedure: str
) -> list[str]:
    """Why upgrading `node` from `kubelet` to `target` breaks a rule of the version skew policy
    (kubernetes.io/releases/version-skew-policy) or of kubeadm; [] when it may go. Pure.

    `procedure`: "apply" on the first control plane (its `kubeadm upgrade apply` moves the
    cluster's version, so its kubelet may aim one minor past the API servers), "node" on the
    other control planes (`kubeadm upgrade node` takes them to the version apply set), "worker".
    """
    problems = []
    if target < kubelet:
        problems.append(
            f"{target} is older than {node}'s kubelet {kubelet}: kubegate does not downgrade "
            "(kubeadm does not support it). Rebuild the node at the older version instead."
        )
    elif _minor_jump(kubelet, target) > 1:
        problems.append(
            f"{kubelet} → {target} skips a minor version: kubeadm upgrades one minor at a time. "
            f"Upgrade to the latest {kubelet.next_minor.minor_line}.x first."
        )
    if procedure == "apply":
        problems += api_server_problems(target, skew)
    else:
        problems += _kubelet_problems(target, skew, control_plane=procedure == "node")
    return problems


def api_server_problems(target: Version, skew: Skew) -> list[str]:
    """`kubeadm upgrade apply` moves the API servers to `target`: no downgrade, one minor at a
    time, HA API servers within one minor of each other, kubelets at most three minors older."""
    (newest_name, newest), (oldest_name, oldest) = skew.newest, skew.oldest
    if target < newest:
        return [
            f"{newest_name}'s API server is already at {newest}: `kubeadm upgrade apply "
            f"{target}` would downgrade it, which kubeadm does not support."
        ]
    problems = []
    if _minor_jump(oldest, target) > 1:
        problems.append(
            f"{oldest_name}'s API server is at {oldest}: API servers move one minor at a time "
            f"and stay within one minor of each other, so {target} is out of reach. Go to "
            f"{oldest.next_minor.minor_line}.x first."
        )
    if skew.oldest_kubelet is not None:
        slow, at = skew.oldest_kubelet
        if _minor_jump(at, target) > 3:
            problems.append(
                f"{slow}'s kubelet is at {at}: a kubelet may be at most three minors older than "
                f"the API server, and {target} would leave it four or more behind. Upgrade "
                f"{slow} first."
            )
    return problems


def _kubelet_problems(target: Version, skew: Skew, *, control_plane: bool) -> list[str]:
    """A worker's kubelet is never a newer minor than the oldest API server; a newer patch of
    the same minor is allowed. A control plane's `kubeadm upgrade node` moves its own API
    server and then its kubelet, one control plane after another (kubeadm's "Upgrading kubeadm
    clusters"): it only follows the version the first one's `upgrade apply` set."""
    (newest_name, newest), (oldest_name, oldest) = skew.newest, skew.oldest
    if control_plane:
        if target <= newest:
            return []
        return [
            f"`kubeadm upgrade node` takes a control plane to the version `kubeadm upgrade "
            f"apply` set on the first control plane, and the newest API server ({newest_name}) "
            f"is at {newest}: upgrade the first control plane to {target} first."
        ]
    if (target.major, target.minor) > (oldest.major, oldest.minor):
        return [
            f"a kubelet must never be a newer minor than the oldest API server, and "
            f"{oldest_name}'s is at {oldest}: upgrade the control planes to {target} first "
            f"(`/kube upgrade cluster --to {target}`)."
        ]
    return []


def _minor_jump(current: Version, target: Version) -> int:
    if target.major != current.major:
        return 99  # a new major is never one step away
    return target.minor - current.minor
