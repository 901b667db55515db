"""What each API playbook decides from an observed snapshot: the plan it proposes (with typed
step parameters) or the refusal, with no cluster at all (the `decide_*` functions are pure)."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from commands import (
    CordonCommand,
    DrainCommand,
    ScaleHpaCommand,
    TaintCommand,
    UntaintCommand,
    parse_command,
)
from playbooks import PLAYBOOKS, Plan, PlanError
from playbooks.cordon import SetSchedulableParams, decide_scheduling
from playbooks.drain import DrainSnapshot, EvictPodsParams, WaitUntilGoneParams, decide_drain
from playbooks.hpa import HpaView, SetHpaBoundsParams, decide_hpa_bounds
from playbooks.kube import NodeView, node_view
from playbooks.pods import pdb_view, pod_view, select_for_drain
from playbooks.taints import EditTaintsParams, decide_taints
from tests.fakes import hpa, node, pdb, pod

C = TypeVar("C")


def command(text: str, kind: type[C]) -> C:
    parsed = parse_command(text)
    assert isinstance(parsed, kind)
    return parsed


def seen(**overrides: Any) -> NodeView:
    return node_view(node("worker-1", **overrides))


def drain_snapshot(
    *pods: dict[str, Any], allowed: int = 1, cordoned: bool = False
) -> DrainSnapshot:
    return DrainSnapshot(
        node=seen(unschedulable=cordoned),
        selection=select_for_drain([pod_view(p) for p in pods]),
        pdbs=[pdb_view(pdb("web", match={"app": "web"}, allowed=allowed))],
    )


WEB = [pod(f"web-{i}", node="worker-1", labels={"app": "web"}) for i in range(2)]
CACHE = pod("cache-0", node="worker-1", owner=("ReplicaSet", "cache-1a2"), empty_dir=True)
BARE = pod("debug", node="worker-1", namespace="default", owner=None)


def only_params(plan: Plan) -> Any:
    assert len(plan.steps) == 1
    return plan.steps[0].params


# Cordon, uncordon ---------------------------------------------------------------------------


def test_cordoning_a_schedulable_node_plans_one_step_that_marks_it_unschedulable() -> None:
    plan = decide_scheduling(seen(), verb="cordon", cluster="prod", unschedulable=True)
    assert only_params(plan) == SetSchedulableParams(node="worker-1", unschedulable=True)
    assert plan.nothing_to_do is None and plan.locks == ["node/worker-1"]
    assert plan.steps[0].title == "Cordon worker-1 (schedulable now)"
    assert plan.facts["unschedulable"] is False and plan.risk == "low"


def test_cordoning_a_node_that_is_already_cordoned_is_nothing_to_do() -> None:
    plan = decide_scheduling(
        seen(unschedulable=True), verb="cordon", cluster="prod", unschedulable=True
    )
    assert plan.nothing_to_do == "worker-1 is already cordoned; nothing to do."


def test_uncordoning_a_cordoned_node_plans_to_mark_it_schedulable() -> None:
    plan = decide_scheduling(
        seen(unschedulable=True), verb="uncordon", cluster="prod", unschedulable=False
    )
    assert only_params(plan) == SetSchedulableParams(node="worker-1", unschedulable=False)
    assert plan.nothing_to_do is None and plan.title == "Uncordon worker-1"


def test_uncordoning_a_schedulable_node_is_nothing_to_do() -> None:
    plan = decide_scheduling(seen(), verb="uncordon", cluster="prod", unschedulable=False)
    assert plan.nothing_to_do == "worker-1 is already schedulable; nothing to do."


def test_the_preview_says_whether_the_node_is_ready_and_its_kubelet() -> None:
    plan = decide_scheduling(seen(ready=False), verb="cordon", cluster="prod", unschedulable=True)
    assert plan.preview == ["worker-1: NotReady, kubelet v1.31.2, schedulable now"]


# Drain ----------------------------------------------------------------------------------------


def test_a_drain_plans_cordon_evict_and_wait_with_the_commands_flags_as_parameters() -> None:
    drain = command("drain worker-1 --timeout 90s --delete-emptydir-data", DrainCommand)
    plan = decide_drain(drain_snapshot(*WEB, CACHE), drain, cluster="prod")
    assert [s.name for s in plan.steps] == ["set-schedulable", "evict-pods", "wait-gone"]
    cordon, evict, wait = (s.params for s in plan.steps)
    assert cordon == SetSchedulableParams(node="worker-1", unschedulable=True)
    assert evict == EvictPodsParams(
        node="worker-1", timeout_seconds=90.0, force=False, delete_emptydir_data=True
    )
    assert wait == WaitUntilGoneParams(node="worker-1")
    assert plan.steps[1].title == "Evict 3 pod(s) through their PDBs"
    assert plan.facts["pdb_headroom"] == {"shop/web": 1} and plan.risk == "medium"


def test_a_drain_is_refused_up_front_when_a_bare_pod_would_be_lost_without_force() -> None:
    drain = command("drain worker-1", DrainCommand)
    with pytest.raises(PlanError) as refused:
        decide_drain(drain_snapshot(*WEB, BARE), drain, cluster="prod")
    assert "Refusing to drain worker-1; nothing was changed." in refused.value.message
    assert "default/debug" in refused.value.message and "--force" in refused.value.message


def test_a_drain_is_refused_when_emptydir_data_would_be_lost_without_the_flag() -> None:
    drain = command("drain worker-1", DrainCommand)
    with pytest.raises(PlanError) as refused:
        decide_drain(drain_snapshot(CACHE), drain, cluster="prod")
    assert "--delete-emptydir-data" in refused.value.message


def test_a_drain_with_force_plans_to_evict_the_bare_pod_too() -> None:
    drain = command("drain worker-1 --force", DrainCommand)
    plan = decide_drain(drain_snapshot(*WEB, BARE), drain, cluster="prod")
    assert "pod/default/debug" in plan.steps[1].touches
    assert plan.facts["needs_force"] == ["default/debug"]


def test_the_drain_plan_says_when_the_node_was_cordoned_already() -> None:
    drain = command("drain worker-1", DrainCommand)
    plan = decide_drain(drain_snapshot(*WEB, cordoned=True), drain, cluster="prod")
    assert plan.steps[0].title == "Cordon worker-1 (cordoned already)"


# Taint, untaint -----------------------------------------------------------------------------


def test_tainting_plans_one_edit_with_the_taint_as_parameters() -> None:
    taint = command("taint worker-1 dedicated=db:NoSchedule", TaintCommand)
    plan = decide_taints(seen(), taint, verb="taint", cluster="prod")
    assert only_params(plan) == EditTaintsParams(
        node="worker-1", remove=False, key="dedicated", value="db", effect="NoSchedule"
    )
    assert plan.preview == ["Taints of worker-1 now: none"] and plan.nothing_to_do is None


def test_tainting_with_a_taint_the_node_already_has_is_nothing_to_do() -> None:
    taint = command("taint worker-1 dedicated=db:NoSchedule", TaintCommand)
    has = [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]
    plan = decide_taints(seen(taints=has), taint, verb="taint", cluster="prod")
    assert plan.nothing_to_do == "worker-1 already has that taint; nothing to do."


def test_tainting_with_a_new_value_replaces_the_old_one() -> None:
    taint = command("taint worker-1 dedicated=gpu:NoSchedule", TaintCommand)
    has = [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]
    plan = decide_taints(seen(taints=has), taint, verb="taint", cluster="prod")
    assert plan.nothing_to_do is None
    assert plan.facts["taints_with_key"] == ["dedicated=db:NoSchedule"]


def test_untainting_a_key_the_node_does_not_have_is_nothing_to_do() -> None:
    untaint = command("untaint worker-1 dedicated", UntaintCommand)
    plan = decide_taints(seen(), untaint, verb="untaint", cluster="prod")
    assert plan.nothing_to_do == "worker-1 already has no such taint; nothing to do."


def test_untainting_a_key_plans_to_remove_every_effect_of_it() -> None:
    untaint = command("untaint worker-1 dedicated", UntaintCommand)
    has = [
        {"key": "dedicated", "effect": "NoSchedule"},
        {"key": "dedicated", "effect": "NoExecute"},
    ]
    plan = decide_taints(seen(taints=has), untaint, verb="untaint", cluster="prod")
    assert only_params(plan) == EditTaintsParams(
        node="worker-1", remove=True, key="dedicated", effect=None
    )


# Scale HPA ------------------------------------------------------------------------------------


def test_scaling_an_hpa_plans_both_bounds_in_one_step() -> None:
    scale = command("scale hpa shop/web --min 2 --max 8", ScaleHpaCommand)
    plan = decide_hpa_bounds(HpaView.of(hpa("web", minimum=3, maximum=6)), scale, cluster="prod")
    assert only_params(plan) == SetHpaBoundsParams(
        namespace="shop", name="web", min_replicas=2, max_replicas=8
    )
    assert plan.facts == {"hpa_exists": True, "min": 3, "max": 6}
    assert "after: min 2, max 8" in plan.preview[0]


def test_scaling_an_hpa_to_the_bounds_it_has_is_nothing_to_do() -> None:
    scale = command("scale hpa shop/web --min 3 --max 6", ScaleHpaCommand)
    plan = decide_hpa_bounds(HpaView.of(hpa("web", minimum=3, maximum=6)), scale, cluster="prod")
    assert plan.nothing_to_do == "HPA shop/web already has min 3, max 6; nothing to do."


def test_scaling_an_hpa_that_does_not_exist_is_refused() -> None:
    scale = command("scale hpa shop/nope --min 1 --max 2", ScaleHpaCommand)
    with pytest.raises(PlanError) as refused:
        decide_hpa_bounds(None, scale, cluster="prod")
    assert (
        refused.value.message == "There is no HorizontalPodAutoscaler `shop/nope` in cluster prod."
    )


def test_a_cordon_command_is_refused_by_the_uncordon_playbook_before_any_planning() -> None:
    with pytest.raises(TypeError):
        PLAYBOOKS["uncordon"].narrow(command("cordon worker-1", CordonCommand))
