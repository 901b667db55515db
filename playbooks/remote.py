"""A step's commands on one node over SSH: run in order, halting at the first that fails.

A failure becomes the step's result: one line naming the command and its exit code, and the
tail of its output, as the thread shows it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from playbooks.base import ClusterHandle, RemoteShell, StepContext, StepResult
from playbooks.ssh import CommandResult, SshTarget


@dataclass(frozen=True)
class RemoteCommand:
    """An argv and what to call it in the thread (never its secret arguments)."""

    argv: tuple[str, ...]
    label: str

    @classmethod
    def of(cls, *argv: str) -> RemoteCommand:
        return cls(tuple(argv), shlex.join(argv))

    @classmethod
    def script(cls, label: str, script: str, *values: str) -> RemoteCommand:
        """`sh -c` with a fixed script; values arrive as $1… and are never part of the script."""
        return cls(("sh", "-c", script, "sh", *values), label)


class NodeRef(BaseModel):
    """A node by name; `address` is set for a host that is not a Node in the API yet. Part of
    the step parameters of every step that reaches a host over SSH."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    address: str | None = None

    async def target(self, cluster: ClusterHandle) -> SshTarget:
        if self.address is not None:
            return cluster.inventory.target_for_address(self.name, self.address)
        return await cluster.ssh_target(self.name)


@dataclass(frozen=True)
class Remote:
    """One node's shell as a step uses it."""

    ssh: RemoteShell
    target: SshTarget
    timeout: float

    @classmethod
    async def open(cls, ctx: StepContext, node: NodeRef) -> Remote:
        cluster = ctx.cluster
        return cls(
            await cluster.ssh(), await node.target(cluster), cluster.inventory.ssh.command_timeout
        )

    async def run(self, command: RemoteCommand) -> CommandResult:
        return await self.ssh.run(self.target, command.argv, timeout=self.timeout)

    async def run_in_order(self, commands: Sequence[RemoteCommand]) -> StepResult | list[str]:
        """Each command in turn: the failed result of the first that fails, else their labels."""
        ran = []
        for command in commands:
            result = await self.run(command)
            if not result.ok:
                return failed(result, command.label)
            ran.append(command.label)
        return ran

    async def answer(self, command: RemoteCommand) -> str | None:
        """A probe's stdout when it succeeds; None when it fails (the probe's answer is no)."""
        result = await self.run(command)
        return result.stdout.strip() if result.ok else None


def failed(result: CommandResult, label: str) -> StepResult:
    return StepResult(
        ok=False,
        summary=f"`{label}` failed on {result.node} (exit {result.exit_status})",
        output=result.tail(),
    )
