"""Pods and PodDisruptionBudgets as a drain sees them. Pure: decisions over API-shaped dicts.

Which pods a drain evicts, which it skips and why, which block it, and which PDB guards each.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class PodView:
    namespace: str
    name: str
    uid: str
    owner_kind: str | None
    owner_name: str | None
    phase: str
    ready: bool
    mirror: bool
    empty_dir: bool
    terminating: bool
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def workload(self) -> str:
        """What an operator calls the pod's owner: a Deployment for ReplicaSet pods."""
        if self.owner_kind == "ReplicaSet" and self.owner_name:
            template_hash = self.labels.get("pod-template-hash")
            name = self.owner_name
            if template_hash and name.endswith(f"-{template_hash}"):
                name = name[: -len(template_hash) - 1]
            return f"{self.namespace}/{name}"
        if self.owner_name:
            return f"{self.namespace}/{self.owner_name}"
        return self.key


def pod_view(pod: Obj) -> PodView:
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    owner = next((o for o in metadata.get("ownerReferences") or [] if o.get("controller")), None)
    conditions = status.get("conditions") or []
    return PodView(
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        owner_kind=owner.get("kind") if owner else None,
        owner_name=owner.get("name") if owner else None,
        phase=status.get("phase", ""),
        ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
        mirror=MIRROR_ANNOTATION in (metadata.get("annotations") or {}),
        empty_dir=any("emptyDir" in volume for volume in spec.get("volumes") or []),
        terminating=metadata.get("deletionTimestamp") is not None,
        labels=dict(metadata.get("labels") or {}),
    )


@dataclass(frozen=True)
class Pdb:
    namespace: str
    name: str
    # policy/v1: an empty selector matches every pod of the namespace, a missing one none.
    selector: Obj | None
    disruptions_allowed: int

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def covers(self, pod: PodView) -> bool:
        if self.selector is None or pod.namespace != self.namespace:
            return False
        return selector_matches(self.selector, pod.labels)


def pdb_view(pdb: Obj) -> Pdb:
    metadata = pdb.get("metadata") or {}
    return Pdb(
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        selector=(pdb.get("spec") or {}).get("selector"),
        disruptions_allowed=int((pdb.get("status") or {}).get("disruptionsAllowed") or 0),
    )


def selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions); `{}` matches every pod."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


@dataclass(frozen=True)
class DrainSelection:
    evict: list[PodView]
    daemonset: list[PodView]
    mirror: list[PodView]
    bare: list[PodView]
    empty_dir: list[PodView]

    def blockers(self, *, force: bool, delete_emptydir_data: bool) -> list[str]:
        """Why the whole drain must be refused before anything is evicted, in words."""
        reasons = []
        if self.bare and not force:
            names = ", ".join(p.key for p in self.bare)
            reasons.append(
                f"{len(self.bare)} pod(s) have no controller and would be gone for good: {names}. "
                "Add --force to delete them anyway."
            )
        if self.empty_dir and not delete_emptydir_data:
            names = ", ".join(p.key for p in self.empty_dir)
            reasons.append(
                f"{len(self.empty_dir)} pod(s) use emptyDir, whose data is lost on eviction: {names}. "
                "Add --delete-emptydir-data to evict them anyway."
            )
        return reasons


def select_for_drain(pods: list[PodView]) -> DrainSelection:
    """As `kubectl drain --ignore-daemonsets`: mirror and DaemonSet pods stay; the rest go."""
    evict, daemonset, mirror, bare, empty_dir = [], [], [], [], []
    for pod in sorted(pods, key=lambda p: p.key):
        if pod.mirror:
            mirror.append(pod)
        elif pod.owner_kind == "DaemonSet" and not pod.finished:
            daemonset.append(pod)
        else:
            evict.append(pod)
            if pod.owner_kind is None and not pod.finished:
                bare.append(pod)
            if pod.empty_dir and not pod.finished:
                empty_dir.append(pod)
    return DrainSelection(evict, daemonset, mirror, bare, empty_dir)


def eviction_preview(selection: DrainSelection, pdbs: list[Pdb]) -> list[str]:
    """Pods to evict grouped by workload, with the PDB that guards each group and its headroom."""
    groups = Counter(pod.workload for pod in selection.evict)
    sample = {pod.workload: pod for pod in selection.evict}
    parts = []
    for workload, count in sorted(groups.items()):
        notes = []
        for pdb in pdbs:
            if pdb.covers(sample[workload]):
                allowed = pdb.disruptions_allowed
                notes.append(
                    f"PDB {pdb.name}: {allowed} disruption{'s' if allowed != 1 else ''} allowed now"
                )
        pod = sample[workload]
        if pod.empty_dir:
            notes.append("emptyDir: its data is lost")
        if pod.owner_kind is None and not pod.finished:
            notes.append("no controller: deleted for good")
        parts.append(f"{workload} ×{count}" + (f" ({'; '.join(notes)})" if notes else ""))
    lines = [f"Evict {len(selection.evict)} pod(s): " + (", ".join(parts) or "none")]
    skipped = []
    if selection.daemonset:
        names = ", ".join(sorted({p.workload for p in selection.daemonset}))
        skipped.append(f"{len(selection.daemonset)} DaemonSet pod(s) ({names})")
    if selection.mirror:
        skipped.append(
            f"{len(selection.mirror)} mirror pod(s) ({', '.join(p.key for p in selection.mirror)})"
        )
    if skipped:
        lines.append("Skipped: " + ", ".join(skipped))
    return lines
