"""Plans carry typed step parameters: stored as JSON, read back as their models, and built into
steps by name (never by position); the digest approvers vote on covers them."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from commands import DrainCommand, parse_command
from playbooks import (
    OperationError,
    Plan,
    PlannedStep,
    Step,
    StepContext,
    StepParams,
    StepResult,
    build_step,
    steps_of,
)
from playbooks.cordon import SetSchedulable, SetSchedulableParams
from playbooks.drain import DrainSnapshot, EvictPods, EvictPodsParams, decide_drain
from playbooks.kube import node_view
from playbooks.pods import select_for_drain
from tests.fakes import node


def drain_plan(text: str = "drain worker-1 --timeout 2m") -> Plan:
    command = parse_command(text)
    assert isinstance(command, DrainCommand)
    snapshot = DrainSnapshot(
        node=node_view(node("worker-1")), selection=select_for_drain([]), pdbs=[]
    )
    return decide_drain(snapshot, command, cluster="prod")


def stored(plan: Plan) -> Plan:
    """The plan as the engine reads it back from the job row."""
    return Plan.model_validate(json.loads(json.dumps(plan.model_dump(mode="json"))))


def test_a_stored_plan_reads_back_with_each_steps_parameters_as_their_model() -> None:
    again = stored(drain_plan())
    assert again == drain_plan() and again.digest == drain_plan().digest
    evict = again.steps[1].params
    assert isinstance(evict, EvictPodsParams) and evict.timeout_seconds == 120.0


def test_steps_are_built_by_their_name_with_their_parameters() -> None:
    steps = [build_step(planned) for planned in stored(drain_plan()).steps]
    assert [type(s) for s in steps[:2]] == [SetSchedulable, EvictPods]
    assert steps[0].params == SetSchedulableParams(node="worker-1", unschedulable=True)
    assert steps[1].title == "Evict 0 pod(s) through their PDBs"


def test_the_digest_approvers_vote_on_changes_with_a_steps_parameters_and_the_revision() -> None:
    plan = drain_plan()
    assert drain_plan("drain worker-1 --timeout 3m").digest != plan.digest
    assert plan.model_copy(update={"revision": 1}).digest != plan.digest


def test_a_stored_step_with_parameters_of_another_step_is_refused() -> None:
    with pytest.raises(ValueError, match="carries parameters of 'evict-pods'"):
        PlannedStep(
            name="set-schedulable",
            title="Cordon",
            params=EvictPodsParams(node="worker-1", timeout_seconds=1),
        )


def test_a_step_kubegate_does_not_know_is_refused_in_words() -> None:
    with pytest.raises(OperationError, match="Request the change again"):
        build_step(PlannedStep(name="teleport-node", title="Teleport worker-1"))


def test_two_step_classes_cannot_claim_the_same_name() -> None:
    with pytest.raises(TypeError, match="defined twice"):

        class AnotherCordon(Step[SetSchedulableParams]):
            name: ClassVar[str] = "set-schedulable"
            params_model: ClassVar[type[StepParams]] = SetSchedulableParams

            async def run(self, ctx: StepContext) -> StepResult:
                return StepResult(ok=True, summary="")


def test_a_parameters_model_must_name_its_step_with_a_literal_default() -> None:
    with pytest.raises(TypeError, match="must be"):

        class Loose(StepParams):
            step: str = "loose"


def test_a_stored_plan_without_step_parameters_asks_for_the_change_again() -> None:
    # A job stored by a kubegate from before typed steps: never guessed from list positions.
    plan = Plan(
        verb="cordon",
        cluster="prod",
        target="worker-1",
        title="Cordon worker-1",
        steps=[PlannedStep(name="set-schedulable", title="Cordon worker-1")],
    )
    with pytest.raises(OperationError, match="Request the change again"):
        steps_of(stored(plan))
