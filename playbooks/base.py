"""What a playbook is: it plans a command against the live cluster into typed steps.

A plan's steps carry typed parameters (`StepParams`); the engine builds each step by its name
from the step registry (`Step.kinds`), so it runs any playbook's steps the same way and adding a
verb never touches the engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeVar

from commands import Command
from playbooks.errors import OperationError
from playbooks.inventory import Inventory
from playbooks.kube import Kubernetes
from playbooks.plan import Plan, PlannedStep, StepParams
from playbooks.ssh import CommandResult, OutputSink, SshError, SshTarget
from playbooks.vault import Vault


class PlanError(OperationError):
    """The command cannot be planned (no such node, …); the message is for the requester."""


class RemoteShell(Protocol):
    """What steps may ask of the nodes' shells: the seam between them and SSH.

    `playbooks.ssh.SshExecutor` is the real one; tests/fakes/ssh.py an in-memory one.
    """

    async def run(
        self,
        target: SshTarget,
        argv: Sequence[str],
        *,
        timeout: float = 600,
        on_output: OutputSink | None = None,
    ) -> CommandResult: ...

    async def run_many(
        self, targets: Sequence[SshTarget], argv: Sequence[str], *, timeout: float = 600
    ) -> list[CommandResult | SshError]: ...

    async def sftp_get(self, target: SshTarget, remote: str, local: str) -> None: ...

    async def sftp_put(self, target: SshTarget, local: str, remote: str) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class KubeconfigFile:
    """kubegate's own kubeconfig for a cluster: certificate rotation renews it in place when it
    came from a control plane's admin.conf."""

    path: Path
    context: str | None = None


@dataclass
class ClusterHandle:
    """What the steps may reach on one cluster: its API, its nodes over SSH, Vault."""

    name: str
    kube: Kubernetes
    inventory: Inventory = field(default_factory=Inventory)
    vault: Vault | None = None
    backup_dir: Path = Path("backups")
    backup_keep: int = 7
    # Opens the SSH executor on first use (it may need Vault for keys or a certificate).
    ssh_factory: Callable[[], Awaitable[RemoteShell]] | None = None
    kubeconfig: KubeconfigFile | None = None
    _ssh: RemoteShell | None = None

    async def ssh(self) -> RemoteShell:
        if self._ssh is None:
            if self.ssh_factory is None:
                raise PlanError(f"Cluster {self.name} has no SSH inventory in kubegate's config.")
            self._ssh = await self.ssh_factory()
        return self._ssh

    async def ssh_target(self, node: str) -> SshTarget:
        view = await self.kube.get_node(node)
        if view is None:
            raise PlanError(f"There is no node `{node}` in cluster {self.name}.")
        target = self.inventory.target(view)
        if target is None:
            raise PlanError(
                f"kubegate does not know how to reach {node}: it has no InternalIP and no address in the inventory."
            )
        return target

    async def close(self) -> None:
        if self._ssh is not None:
            await self._ssh.close()
        await self.kube.close()


class StepOutcome(BaseModel):
    """What a finished step found or changed that later steps or its compensation read.

    Stored as the step's result data (JSON), read back typed with `StepResult.outcome`.
    """

    model_config = ConfigDict(frozen=True)


OutcomeT = TypeVar("OutcomeT", bound=StepOutcome)


@dataclass
class StepResult:
    ok: bool
    summary: str
    output: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def done(cls, summary: str, outcome: StepOutcome, *, output: str = "") -> StepResult:
        return cls(ok=True, summary=summary, output=output, data=outcome.model_dump(mode="json"))

    @classmethod
    def failed(
        cls, summary: str, outcome: StepOutcome | None = None, *, output: str = ""
    ) -> StepResult:
        data = outcome.model_dump(mode="json") if outcome is not None else {}
        return cls(ok=False, summary=summary, output=output, data=data)

    def outcome(self, model: type[OutcomeT]) -> OutcomeT:
        """The result's data read as the step's outcome model (validated)."""
        return model.model_validate(self.data)


@dataclass
class StepContext:
    cluster: ClusterHandle
    plan: Plan
    job_id: int
    # Results of the steps already finished in this job, by step name (survive restarts).
    results: dict[str, StepResult]
    say: Callable[[str], Awaitable[None]]
    # Marks a value (a join token…) as secret: masked wherever kubegate writes or posts.
    secret: Callable[[str], None] = lambda value: None
    # Output of the running step, line by line; shown in its thread reply, coalesced.
    progress: Callable[[str], Awaitable[None]] = field(default=lambda line: _nothing())
    # A long step's own checkpoints: saved with `checkpoint`, handed back as `partial` when the
    # step runs again (after a restart or a retry).
    partial: dict[str, Any] = field(default_factory=dict)
    checkpoint: Callable[[dict[str, Any]], None] = lambda data: None

    def outcome(self, step_name: str, model: type[OutcomeT]) -> OutcomeT:
        """The typed outcome of an earlier step of this job (it must have finished)."""
        result = self.results.get(step_name)
        if result is None:
            raise OperationError(f"step `{step_name}` has not finished in this job")
        return result.outcome(model)


async def _nothing() -> None:
    return None


ParamsT = TypeVar("ParamsT", bound=StepParams, default=StepParams, covariant=True)


class Step(ABC, Generic[ParamsT]):
    """One named, idempotent unit of work, built from its typed parameters.

    A class that sets both its `name` and its parameters model (`params_model`, whose `step`
    literal is that name) is registered in `Step.kinds`, from which `build_step` builds it.
    """

    name: ClassVar[str]
    params_model: ClassVar[type[StepParams] | None] = None
    # True when stopping it midway is safe (its remote command is ended, compensation undoes
    # the rest); otherwise a cancel waits for it to finish.
    stoppable: ClassVar[bool] = False
    # True for a check (a health gate, a restart confirmation): on resume it runs again even
    # when the change it checks already took effect; `already_done` is never asked.
    recheck_on_resume: ClassVar[bool] = False
    # True when `compensate` can undo a run that stopped midway (failed, or interrupted), from
    # the result's data: its last checkpoint (`ok` is then False). Abort then calls it too.
    undoes_partial: ClassVar[bool] = False
    # Step name -> the Step class that runs it.
    kinds: ClassVar[dict[str, type[Step[Any]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__ or "params_model" not in cls.__dict__:
            return  # helpers, subclasses reusing a kind, and legacy steps are not built by name
        assert cls.params_model is not None
        wanted = cls.params_model.model_fields["step"].default
        if wanted != cls.name:
            raise TypeError(f"{cls.__name__}: name {cls.name!r} but parameters of {wanted!r}")
        known = Step.kinds.get(cls.name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"step {cls.name!r} is defined twice: {known} and {cls}")
        Step.kinds[cls.name] = cls

    def __init__(self, title: str, params: ParamsT) -> None:
        self.title = title
        self.params = params

    @abstractmethod
    async def run(self, ctx: StepContext) -> StepResult: ...

    async def already_done(self, ctx: StepContext) -> StepResult | None:
        """On resume: the result if this step had already taken effect before the crash."""
        return None

    async def wait_for_leftovers(self, ctx: StepContext) -> None:
        """On resume or retry, before anything else: wait until what this step's earlier run
        started is over (a remote command still running after kubegate died or its SSH
        connection dropped), so that it never runs twice at once. Steps that run remote
        commands override it (the pid/lock file kubegate keeps around each on the node)."""
        return None

    async def compensate(self, ctx: StepContext, result: StepResult) -> str | None:
        """Undo what this step did (on abort); a sentence saying what was undone, or None."""
        return None


def build_step(planned: PlannedStep) -> Step:
    """The step a plan names, built from its parameters (never from its position)."""
    kind = Step.kinds.get(planned.name)
    if kind is None or planned.params is None:
        raise OperationError(
            f"kubegate cannot run step `{planned.name}` ({planned.title}): it was planned by a "
            "kubegate without typed steps for it. Request the change again."
        )
    if kind.params_model is None or not isinstance(planned.params, kind.params_model):
        raise OperationError(f"step `{planned.name}` carries the wrong parameters")
    return kind(planned.title, planned.params)


CommandT = TypeVar("CommandT", bound=Command, default=Command)


class Playbook(ABC, Generic[CommandT]):
    """Plans one verb's command against the live cluster.

    `command_type` is the command this playbook plans; `plan_command` narrows a parsed command
    to it once, so `plan` and `drift` receive it typed.
    """

    verb: ClassVar[str]
    command_type: type[CommandT]
    # The failure message's undo button, in the operator's words for this verb.
    abort_label: ClassVar[str] = "Abort"

    @abstractmethod
    async def plan(self, command: CommandT, cluster: ClusterHandle) -> Plan: ...

    async def plan_command(self, command: Command, cluster: ClusterHandle) -> Plan:
        """Plan a parsed command; the one place it is narrowed to this playbook's type."""
        return await self.plan(self.narrow(command), cluster)

    def narrow(self, command: Command) -> CommandT:
        wanted = self.command_type
        if not isinstance(command, wanted):
            raise TypeError(f"{self.verb} cannot plan {type(command).__name__}")
        return command

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        """What changed that bears on risk; None: compare all the facts for equality."""
        return None

    async def facts_for_remaining(
        self, approved: Plan, cluster: ClusterHandle, *, finished: frozenset[str]
    ) -> dict[str, Any]:
        """For a job that already ran some steps (a retry, a resume): the plan's facts as they
        are now, for what bears on the steps still to run; `drift` then compares them.

        Not a fresh plan: a half-done job's own changes (a node it cordoned, pods it evicted)
        are not drift, and planning again could refuse because of them. The default: nothing
        left depends on a fact the approvers saw (each step re-reads what it acts on and checks
        whether it already took effect), so the approved facts stand.
        """
        return approved.facts


def steps_of(plan: Plan) -> list[Step]:
    """The steps the engine runs for a stored plan: each built by name from its parameters."""
    return [build_step(planned) for planned in plan.steps]
