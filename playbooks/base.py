"""What a playbook is: it plans a command against the live cluster and supplies the steps.

The engine runs any playbook's steps the same way, so adding a verb never touches the engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from commands import Command
from playbooks.kube import KubeApi
from playbooks.plan import Plan


class PlanError(Exception):
    """The command cannot be planned (no such node, …); the message is for the requester."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ClusterHandle:
    """What the steps may reach on one cluster."""

    name: str
    kube: KubeApi


@dataclass
class StepResult:
    ok: bool
    summary: str
    output: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    cluster: ClusterHandle
    plan: Plan
    job_id: int
    # Results of the steps already finished in this job, by step name (survive restarts).
    results: dict[str, StepResult]
    say: Callable[[str], Awaitable[None]]


class Step(ABC):
    """One named, idempotent unit of work."""

    name: ClassVar[str]

    def __init__(self, title: str) -> None:
        self.title = title

    @abstractmethod
    async def run(self, ctx: StepContext) -> StepResult: ...

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        """On resume: the result if this step had already taken effect before the crash."""
        return None

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        """Undo what this step did (on abort); a sentence saying what was undone, or None."""
        return None


class Playbook(ABC):
    verb: ClassVar[str]

    @abstractmethod
    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan: ...

    @abstractmethod
    def steps(self, plan: Plan, command: Command) -> list[Step]: ...

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        """What changed that bears on risk; None: compare all the facts for equality."""
        return None
