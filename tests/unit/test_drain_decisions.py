"""What a drain evicts, skips and refuses, and what counts as drift: pure, from API dicts."""

from __future__ import annotations

from typing import Any

from playbooks.drain import drain_drift, drain_facts, facts_mid_drain
from playbooks.pods import eviction_preview, pdb_view, pod_view, select_for_drain
from playbooks.taints import with_taint, without_taint


def pod(
    name: str,
    *,
    ns: str = "shop",
    owner: tuple[str, str] | None = None,
    labels: dict[str, str] | None = None,
    empty_dir: bool = False,
    mirror: bool = False,
    phase: str = "Running",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": ns,
        "uid": f"uid-{name}",
        "labels": labels or {},
    }
    if owner:
        metadata["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    if mirror:
        metadata["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    volumes = [{"name": "scratch", "emptyDir": {}}] if empty_dir else []
    return {"metadata": metadata, "spec": {"volumes": volumes}, "status": {"phase": phase}}


NODE_PODS = [
    pod(
        "web-7f9-a",
        owner=("ReplicaSet", "web-7f9"),
        labels={"app": "web", "pod-template-hash": "7f9"},
    ),
    pod(
        "web-7f9-b",
        owner=("ReplicaSet", "web-7f9"),
        labels={"app": "web", "pod-template-hash": "7f9"},
    ),
    pod(
        "cache-1a2-x",
        owner=("ReplicaSet", "cache-1a2"),
        labels={"pod-template-hash": "1a2"},
        empty_dir=True,
    ),
    pod("node-agent-q", ns="kube-system", owner=("DaemonSet", "node-agent")),
    pod("etcd-cp-1", ns="kube-system", mirror=True, owner=("Node", "cp-1")),
    pod("debug", ns="default"),
    pod("job-done", ns="default", phase="Succeeded"),
]
WEB_PDB = {
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"selector": {"matchLabels": {"app": "web"}}},
    "status": {"disruptionsAllowed": 1},
}


def test_daemonset_and_mirror_pods_are_skipped_and_the_rest_evicted() -> None:
    selection = select_for_drain([pod_view(p) for p in NODE_PODS])
    assert [p.name for p in selection.daemonset] == ["node-agent-q"]
    assert [p.name for p in selection.mirror] == ["etcd-cp-1"]
    assert {p.name for p in selection.evict} == {
        "web-7f9-a",
        "web-7f9-b",
        "cache-1a2-x",
        "debug",
        "job-done",
    }


def test_bare_and_emptydir_pods_refuse_the_whole_drain_until_the_flags_are_given() -> None:
    selection = select_for_drain([pod_view(p) for p in NODE_PODS])
    reasons = selection.blockers(force=False, delete_emptydir_data=False)
    assert "default/debug" in reasons[0] and "--force" in reasons[0]
    assert "shop/cache-1a2-x" in reasons[1] and "--delete-emptydir-data" in reasons[1]
    assert "job-done" not in " ".join(reasons)  # finished pods are always fine to remove
    assert selection.blockers(force=True, delete_emptydir_data=True) == []


def test_the_preview_groups_pods_by_deployment_with_their_pdb_headroom() -> None:
    selection = select_for_drain([pod_view(p) for p in NODE_PODS])
    lines = eviction_preview(selection, [pdb_view(WEB_PDB)])
    assert "shop/web ×2 (PDB web: 1 disruption allowed now)" in lines[0]
    assert "shop/cache ×1 (emptyDir: its data is lost)" in lines[0]
    assert (
        lines[1]
        == "Skipped: 1 DaemonSet pod(s) (kube-system/node-agent), 1 mirror pod(s) (kube-system/etcd-cp-1)"
    )


def test_less_pdb_headroom_or_a_new_pod_needing_force_is_drift_but_more_headroom_is_not() -> None:
    pods = [pod_view(p) for p in NODE_PODS]
    approved = drain_facts(select_for_drain(pods), [pdb_view(WEB_PDB)])
    tighter = {**WEB_PDB, "status": {"disruptionsAllowed": 0}}
    looser = {**WEB_PDB, "status": {"disruptionsAllowed": 2}}
    assert drain_drift(approved, drain_facts(select_for_drain(pods), [pdb_view(looser)])) == []
    assert (
        "less headroom"
        in drain_drift(approved, drain_facts(select_for_drain(pods), [pdb_view(tighter)]))[0]
    )
    more = [*pods, pod_view(pod("stray", ns="default"))]
    assert (
        "default/stray"
        in drain_drift(approved, drain_facts(select_for_drain(more), [pdb_view(WEB_PDB)]))[0]
    )


def test_a_pdb_without_selector_guards_nothing_and_an_empty_one_guards_the_namespace() -> None:
    web = pod_view(NODE_PODS[0])
    assert not pdb_view({"metadata": {"name": "x", "namespace": "shop"}, "spec": {}}).covers(web)
    assert pdb_view(
        {"metadata": {"name": "x", "namespace": "shop"}, "spec": {"selector": {}}}
    ).covers(web)
    expressions = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}
    assert pdb_view(
        {"metadata": {"name": "x", "namespace": "shop"}, "spec": {"selector": expressions}}
    ).covers(web)


def test_taints_are_set_by_key_and_effect_and_removed_by_key() -> None:
    taints = [
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
        {"key": "dedicated", "effect": "NoExecute"},
    ]
    changed = with_taint(taints, key="dedicated", value="gpu", effect="NoSchedule")
    assert {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"} in changed and len(
        changed
    ) == 2
    assert without_taint(taints, key="dedicated", effect="NoExecute") == taints[:1]
    assert without_taint(taints, key="dedicated", effect=None) == []


def test_a_drain_that_began_counts_new_pods_and_new_pdbs_but_not_the_headroom_it_used_up() -> None:
    pods = [pod_view(p) for p in NODE_PODS]
    approved = drain_facts(select_for_drain(pods), [pdb_view(WEB_PDB)])
    used_up = {**WEB_PDB, "status": {"disruptionsAllowed": 0}}  # by this drain's own evictions
    now = drain_facts(select_for_drain(pods), [pdb_view(used_up)])
    assert drain_drift(approved, facts_mid_drain(approved, now)) == []
    cache_pdb = {
        "metadata": {"name": "cache", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"pod-template-hash": "1a2"}}},
        "status": {"disruptionsAllowed": 0},
    }
    more = [*pods, pod_view(pod("stray", ns="default"))]
    later = drain_facts(select_for_drain(more), [pdb_view(used_up), pdb_view(cache_pdb)])
    changes = drain_drift(approved, facts_mid_drain(approved, later))
    assert any("default/stray" in change for change in changes)
    assert any("PDB shop/cache now guards pods on this node" in change for change in changes)
