"""Steps and their compensation on the fake tier (an in-memory Kubernetes API): what a node,
its pods and an HPA look like after a run and after an abort, conflicts and refusals included."""

from __future__ import annotations

import asyncio
from typing import Any

from commands import DrainCommand, TaintCommand, UntaintCommand, parse_command
from playbooks import Plan
from playbooks.cordon import decide_scheduling
from playbooks.drain import DrainPlaybook
from playbooks.hpa import ScaleHpaPlaybook
from playbooks.taints import CONFLICT_RETRIES, decide_taints
from tests.fakes import FakeKube, Run, cluster_of, hpa, node, pdb, pod

Obj = dict[str, Any]
NO_SCHEDULE_DB = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
GPU = {"key": "gpu", "effect": "NoSchedule"}


def taint_plan(kube: FakeKube, text: str) -> Plan:
    command = parse_command(text)
    assert isinstance(command, TaintCommand | UntaintCommand)
    return decide_taints(kube.node("worker-1"), command, verb=command.verb, cluster="test")


def someone_adds(taint: Obj) -> Any:
    def change(obj: Obj) -> None:
        obj["spec"]["taints"] = [*obj["spec"].get("taints", []), taint]

    return change


def taints(kube: FakeKube) -> list[Obj]:
    return [dict(t) for t in kube.node("worker-1").taints]


# Cordon -------------------------------------------------------------------------------------


async def test_a_cordon_marks_the_node_and_its_abort_makes_it_schedulable_again() -> None:
    kube = FakeKube(node("worker-1"))
    run = Run(
        decide_scheduling(kube.node("worker-1"), verb="cordon", cluster="test", unschedulable=True),
        cluster_of(kube),
    )
    assert (await run.all()).summary == "worker-1 cordoned"
    assert kube.node("worker-1").unschedulable
    assert await run.abort() == ["worker-1 uncordoned again, as it was before"]
    assert not kube.node("worker-1").unschedulable


async def test_aborting_a_cordon_leaves_a_node_someone_else_uncordoned_since_alone() -> None:
    kube = FakeKube(node("worker-1"))
    run = Run(
        decide_scheduling(kube.node("worker-1"), verb="cordon", cluster="test", unschedulable=True),
        cluster_of(kube),
    )
    await run.all()
    kube.edit("Node", "worker-1", lambda n: n["spec"].update(unschedulable=False))
    assert await run.abort() == ["worker-1 was already uncordoned by someone else; left as it is"]
    assert [c for c in kube.calls if c[0] == "set_unschedulable"] == [
        ("set_unschedulable", "worker-1")
    ]


async def test_a_node_cordoned_before_the_job_stays_cordoned_after_its_abort() -> None:
    kube = FakeKube(node("worker-1"))
    plan = decide_scheduling(
        kube.node("worker-1"), verb="cordon", cluster="test", unschedulable=True
    )
    kube.edit("Node", "worker-1", lambda n: n["spec"].update(unschedulable=True))
    run = Run(plan, cluster_of(kube))
    assert (await run.all()).summary == "worker-1 was already cordoned; nothing changed"
    assert await run.abort() == []
    assert kube.node("worker-1").unschedulable


# Taints: the 409 retry and the undo ---------------------------------------------------------


async def test_a_taint_write_that_meets_a_409_reads_again_and_keeps_the_other_writers_taint() -> (
    None
):
    kube = FakeKube(node("worker-1"))
    kube.concurrent_writes(
        "worker-1", someone_adds(GPU), someone_adds({"key": "b", "effect": "NoExecute"})
    )
    run = Run(taint_plan(kube, "taint worker-1 dedicated=db:NoSchedule"), cluster_of(kube))
    result = await run.all()
    assert result.ok, result.summary
    assert taints(kube) == [GPU, {"key": "b", "effect": "NoExecute"}, NO_SCHEDULE_DB]
    assert [c for c in kube.calls if c[0] == "set_taints"] == [("set_taints", "worker-1")] * 3


async def test_a_node_that_keeps_changing_fails_the_taint_step_without_changing_it() -> None:
    kube = FakeKube(node("worker-1"))
    kube.concurrent_writes(
        "worker-1",
        *(someone_adds({"key": f"k{i}", "effect": "NoSchedule"}) for i in range(CONFLICT_RETRIES)),
    )
    run = Run(taint_plan(kube, "taint worker-1 dedicated=db:NoSchedule"), cluster_of(kube))
    result = await run.all()
    assert not result.ok
    assert result.summary == f"worker-1 kept changing; gave up after {CONFLICT_RETRIES} conflicts"
    assert NO_SCHEDULE_DB not in taints(kube)
    assert await run.abort() == []  # a failed step is not undone: it changed nothing


async def test_aborting_a_taint_removes_it_and_keeps_a_taint_added_by_someone_else_since() -> None:
    kube = FakeKube(node("worker-1"))
    run = Run(taint_plan(kube, "taint worker-1 dedicated=db:NoSchedule"), cluster_of(kube))
    await run.all()
    kube.edit("Node", "worker-1", someone_adds(GPU))
    assert await run.abort() == ["taints of worker-1 restored"]
    assert taints(kube) == [GPU]


async def test_aborting_a_new_taint_value_puts_the_old_value_back() -> None:
    kube = FakeKube(node("worker-1", taints=[NO_SCHEDULE_DB]))
    run = Run(taint_plan(kube, "taint worker-1 dedicated=gpu:NoSchedule"), cluster_of(kube))
    await run.all()
    assert taints(kube) == [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    await run.abort()
    assert taints(kube) == [NO_SCHEDULE_DB]


async def test_the_taint_undo_also_reads_again_after_a_409() -> None:
    kube = FakeKube(node("worker-1"))
    run = Run(taint_plan(kube, "taint worker-1 dedicated=db:NoSchedule"), cluster_of(kube))
    await run.all()
    kube.concurrent_writes("worker-1", someone_adds(GPU))
    assert await run.abort() == ["taints of worker-1 restored"]
    assert taints(kube) == [GPU]


async def test_aborting_a_taint_someone_else_already_re_valued_leaves_their_value() -> None:
    kube = FakeKube(node("worker-1"))
    run = Run(taint_plan(kube, "taint worker-1 dedicated=db:NoSchedule"), cluster_of(kube))
    await run.all()
    theirs = {"key": "dedicated", "value": "web", "effect": "NoSchedule"}
    kube.edit("Node", "worker-1", lambda n: n["spec"].update(taints=[theirs]))
    assert await run.abort() == [
        "taints of worker-1 left as they are: someone else changed them since"
    ]
    assert taints(kube) == [theirs]


async def test_aborting_an_untaint_puts_the_removed_taints_back() -> None:
    both = [
        {"key": "dedicated", "effect": "NoSchedule"},
        {"key": "dedicated", "effect": "NoExecute"},
    ]
    kube = FakeKube(node("worker-1", taints=[*both, GPU]))
    run = Run(taint_plan(kube, "untaint worker-1 dedicated"), cluster_of(kube))
    await run.all()
    assert taints(kube) == [GPU]
    await run.abort()
    assert taints(kube) == [GPU, *both]


# Drain ----------------------------------------------------------------------------------------


def drain_cluster(allowed: int) -> FakeKube:
    return FakeKube(
        node("worker-1"),
        *(pod(f"web-{i}", node="worker-1", labels={"app": "web"}) for i in range(3)),
        pod("other", node="worker-2"),
        pdb("web", match={"app": "web"}, allowed=allowed),
    )


async def drain_plan(kube: FakeKube, text: str = "drain worker-1 --timeout 5s") -> Plan:
    command = parse_command(text)
    assert isinstance(command, DrainCommand)
    return await DrainPlaybook().plan(command, cluster_of(kube))


async def test_a_drain_cordons_evicts_through_the_pdb_and_waits_until_the_pods_are_gone() -> None:
    kube = drain_cluster(allowed=3)
    kube.refuse_evictions(2)  # 429 twice, as while a PDB's status lags: re-tried, not failed
    run = Run(await drain_plan(kube), cluster_of(kube))
    result = await run.all()
    assert result.ok and result.summary == "3 pod(s) gone from worker-1"
    assert await kube.pods_on("worker-1") == [] and len(await kube.pods_on("worker-2")) == 1
    assert kube.node("worker-1").unschedulable
    assert [c[0] for c in kube.calls].count("evict") == 5


async def test_a_drain_held_by_its_pdb_times_out_names_the_pods_and_its_abort_uncordons() -> None:
    kube = drain_cluster(allowed=1)
    run = Run(await drain_plan(kube, "drain worker-1 --timeout 1s"), cluster_of(kube))
    result = await run.all()
    assert not result.ok and "held by PDB shop/web (0 allowed)" in result.summary
    assert len(await kube.pods_on("worker-1")) == 2
    assert await run.abort() == ["worker-1 uncordoned again, as it was before"]
    assert not kube.node("worker-1").unschedulable


async def test_a_pdb_that_gains_headroom_lets_a_waiting_eviction_through_at_once() -> None:
    kube = drain_cluster(allowed=0)
    run = Run(await drain_plan(kube, "drain worker-1 --timeout 30s"), cluster_of(kube))
    cordon, evict = run.steps[:2]
    run.ctx.results[cordon.name] = await cordon.run(run.ctx)
    evicting = asyncio.create_task(evict.run(run.ctx))
    async with asyncio.timeout(5):
        while [c[0] for c in kube.calls].count("evict") < 3:  # each refused once (429)
            await asyncio.sleep(0)
    kube.edit("PDB", "web", lambda b: b["status"].update(disruptionsAllowed=3), "shop")
    async with asyncio.timeout(2):  # before the 5 s fallback re-try: the watch woke them
        result = await evicting
    assert result.ok and result.summary == "3 pod(s) evicted"


async def test_the_wait_step_reads_which_pods_to_wait_for_from_the_evict_steps_outcome() -> None:
    kube = drain_cluster(allowed=3)
    run = Run(await drain_plan(kube), cluster_of(kube))
    await run.all()
    evicted = run.ctx.results["evict-pods"].data["evicted"]
    assert sorted(p["name"] for p in evicted) == ["web-0", "web-1", "web-2"]


# HPA ------------------------------------------------------------------------------------------


async def test_scaling_an_hpa_patches_both_bounds_and_its_abort_restores_them() -> None:
    kube = FakeKube(hpa("web", minimum=3, maximum=6))
    command = parse_command("scale hpa shop/web --min 2 --max 9")
    run = Run(await ScaleHpaPlaybook().plan_command(command, cluster_of(kube)), cluster_of(kube))
    assert (await run.all()).summary == "HPA shop/web: min 3 → 2, max 6 → 9"
    assert [c[0] for c in kube.calls].count("set_hpa_bounds") == 1
    assert await run.abort() == ["HPA shop/web back to min 3, max 6"]
    spec = (await kube.get_hpa("shop", "web") or {})["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 6)
