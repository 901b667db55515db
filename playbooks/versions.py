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


def skew_problems(
    *, node: str, kubelet: Version, target: Version, api_server: Version, moves_api_server: bool
) -> list[str]:
    """Why upgrading `node` from `kubelet` to `target` breaks a skew rule; [] when it may go.

    `moves_api_server`: the node is the first control plane, whose `kubeadm upgrade apply`
    takes the API server to the target first, so its kubelet may aim one minor past it.
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
    if moves_api_server:
        if target < api_server:
            problems.append(
                f"the API server is already at {api_server}: `kubeadm upgrade apply {target}` "
                "would downgrade it, which kubeadm does not support."
            )
        elif _minor_jump(api_server, target) > 1:
            problems.append(
                f"the API server is at {api_server}: `kubeadm upgrade apply` moves it one minor "
                f"at a time, so {target} is out of reach. Go to {api_server.next_minor.minor_line}.x first."
            )
    elif target > api_server:
        problems.append(
            f"a kubelet must never be newer than the API server, which is at {api_server}: "
            f"upgrade the control plane to {target} first (`/kube upgrade <first control plane> "
            f"--to {target}`)."
        )
    return problems


def _minor_jump(current: Version, target: Version) -> int:
    if target.major != current.major:
        return 99  # a new major is never one step away
    return target.minor - current.minor
