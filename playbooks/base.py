"""What a playbook is: it plans a command against the live cluster and supplies the steps.

The engine runs any playbook's steps the same way, so adding a verb never touches the engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from commands import Command
from playbooks.errors import OperationError
from playbooks.inventory import Inventory
from playbooks.kube import KubeApi
from playbooks.plan import Plan
from playbooks.ssh import SshExecutor, SshTarget
from playbooks.vault import Vault


class PlanError(OperationError):
    """The command cannot be planned (no such node, …); the message is for the requester."""


@dataclass
class ClusterHandle:
    """What the steps may reach on one cluster: its API, its nodes over SSH, Vault."""

    name: str
    kube: KubeApi
    inventory: Inventory = field(default_factory=Inventory)
    vault: Vault | None = None
    backup_dir: Path = Path("backups")
    backup_keep: int = 7
    # Opens the SSH executor on first use (it may need Vault for keys or a certificate).
    ssh_factory: Callable[[], Awaitable[SshExecutor]] | None = None
    _ssh: SshExecutor | None = None

    async def ssh(self) -> SshExecutor:
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
    # Marks a value (a join token…) as secret: masked wherever kubegate writes or posts.
    secret: Callable[[str], None] = lambda value: None
    # Output of the running step, line by line; shown in its thread reply, coalesced.
    progress: Callable[[str], Awaitable[None]] = field(default=lambda line: _nothing())
    # A long step's own checkpoints: saved with `checkpoint`, handed back as `partial` when the
    # step runs again (after a restart or a retry).
    partial: dict[str, Any] = field(default_factory=dict)
    checkpoint: Callable[[dict[str, Any]], None] = lambda data: None


async def _nothing() -> None:
    return None


class Step(ABC):
    """One named, idempotent unit of work."""

    name: ClassVar[str]
    # True when stopping it midway is safe (its remote command is ended, compensation undoes
    # the rest); otherwise a cancel waits for it to finish.
    stoppable: ClassVar[bool] = False

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
    # The failure message's undo button, in the operator's words for this verb.
    abort_label: ClassVar[str] = "Abort"

    @abstractmethod
    async def plan(self, command: Command, cluster: ClusterHandle) -> Plan: ...

    @abstractmethod
    def steps(self, plan: Plan, command: Command) -> list[Step]: ...

    def drift(self, approved: Plan, fresh: Plan) -> list[str] | None:
        """What changed that bears on risk; None: compare all the facts for equality."""
        return None
