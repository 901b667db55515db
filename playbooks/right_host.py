"""The right host, before anything changes (issue 8): a plan asks each node's host who it is
and refuses when the address leads to another machine, so nobody is asked to approve it; and a
node's change begins by asking again (`confirm-host`), before its cordon, as the host may have
changed between approval and run.

The asking is the SSH executor's own identity check (playbooks/ssh_identity.py), made on the
connection the run then keeps: here it is only made early, and its answer put in words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from playbooks.base import ClusterHandle, PlanError, Step, StepContext, StepResult
from playbooks.errors import OperationError
from playbooks.inventory import Inventory
from playbooks.kube import NodeView
from playbooks.plan import StepParams
from playbooks.remote import NodeRef, Remote, RemoteCommand
from playbooks.ssh import CommandResult, HostKeyError, SshError, SshTarget, WrongHostError
from playbooks.ssh_identity import leads_elsewhere

# What runs once the host said it is the Node: nothing at all. The identity probe before it is
# the point; a host that is another Node never gets this far.
NOTHING = RemoteCommand.of("true")


@dataclass(frozen=True)
class HostAnswer:
    """What the host at a node's SSH address said when asked whether it is that Node."""

    node: str
    address: str
    # The refusal in the operator's words when it is another host (or its key changed).
    wrong: str | None = None
    # Why it could not be asked (down, no route): the plan goes on as before this check
    # existed, and the node's first step asks again.
    unreachable: str | None = None


def origin(inventory: Inventory, node: str) -> str:
    """Where the address kubegate uses for `node` came from, in the operator's words."""
    access = inventory.nodes.get(node)
    return "inventory address" if access is not None and access.address else "InternalIP"


def answer_of(
    inventory: Inventory, target: SshTarget, said: CommandResult | SshError
) -> HostAnswer:
    """The host's answer as a plan reads it. Pure."""
    node, address = target.node, target.host
    if isinstance(said, WrongHostError):
        if said.identity is None:
            return HostAnswer(node, address, wrong=said.message)
        words = leads_elsewhere(node, origin(inventory, node), address, said.identity)
        return HostAnswer(node, address, wrong=words)
    if isinstance(said, HostKeyError):
        return HostAnswer(node, address, wrong=said.message)
    if isinstance(said, SshError):
        return HostAnswer(node, address, unreachable=said.message)
    return HostAnswer(node, address)


async def ask_hosts(cluster: ClusterHandle, nodes: Sequence[NodeView]) -> dict[str, HostAnswer]:
    """Ask each node's host who it is, all at once, one kept connection each; nodes without an
    address, or a cluster without SSH in kubegate's config, are not asked (planning says why
    where it matters)."""
    targets = [t for t in map(cluster.inventory.target, nodes) if t is not None]
    if not targets or cluster.ssh_factory is None:
        return {}
    try:
        ssh = await cluster.ssh()
    except OperationError as error:  # its key or certificate from Vault, say
        return {t.node: HostAnswer(t.node, t.host, unreachable=error.message) for t in targets}
    timeout = cluster.inventory.ssh.connect_timeout
    said = await ssh.run_many(targets, NOTHING.argv, timeout=timeout)
    return {
        target.node: answer_of(cluster.inventory, target, answer)
        for target, answer in zip(targets, said, strict=True)
    }


def refuse_wrong_hosts(answers: Iterable[HostAnswer], doing: str) -> None:
    """Raise the plan's refusal when a host is not the Node it is asked as. Pure."""
    wrong = [answer.wrong.rstrip(".") for answer in answers if answer.wrong is not None]
    if wrong:
        raise PlanError(
            f"Refusing to {doing}; nothing was changed. {'; '.join(wrong)}. Fix the address "
            "kubegate has for it (the inventory's `address`, else the Node's InternalIP) or the "
            "host, then ask again."
        )


def host_lines(answers: Iterable[HostAnswer]) -> list[str]:
    """What the approvers read of the hosts asked: who answered, and a warning for each that
    could not be asked. Pure."""
    answers = list(answers)
    sure = [answer for answer in answers if answer.wrong is None and answer.unreachable is None]
    lines = []
    if len(sure) == 1:
        lines.append(f"Host check: {sure[0].address} answered as {sure[0].node}")
    elif sure:
        lines.append(f"Host check: each of the {len(sure)} nodes' addresses answered as its Node")
    return lines + [
        f"⚠️ kubegate could not ask {answer.node}'s host who it is ({answer.unreachable}); it "
        "asks again before anything changes there, and stops if it is not that Node"
        for answer in answers
        if answer.unreachable is not None
    ]


class ConfirmHostParams(StepParams):
    step: Literal["confirm-host"] = "confirm-host"
    host: NodeRef


class ConfirmHost(Step[ConfirmHostParams]):
    """Before a node's cordon: its host proves again it is that Node, so a host that changed
    since approval (an edited inventory, a reused address) halts the job with the node as it
    was, and an abort has nothing to undo there."""

    name: ClassVar[str] = "confirm-host"
    params_model: ClassVar[type[StepParams]] = ConfirmHostParams
    # Asked again on every resume: the host may have changed while kubegate was down.
    recheck_on_resume: ClassVar[bool] = True

    async def run(self, ctx: StepContext) -> StepResult:
        node = self.params.host.name
        remote = await Remote.open(ctx, self.params.host)
        untouched = f"Nothing was changed on {node}; it is as it was before this job."
        try:
            await remote.run(NOTHING)
        except (WrongHostError, HostKeyError) as error:
            return StepResult.failed(f"{error.message} {untouched}")
        except SshError as error:
            return StepResult.failed(
                f"kubegate cannot ask {node}'s host who it is: {error.message}. {untouched}"
            )
        return StepResult(
            ok=True, summary=f"{node}'s host ({remote.target.host}) answered as {node}"
        )
