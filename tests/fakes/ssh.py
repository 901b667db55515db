"""An in-memory SSH executor behind the same interface as playbooks' SshExecutor
(`playbooks.base.RemoteShell`): scripted replies per argv, every call recorded.

Like the real executor, a non-zero exit is a result (CommandResult), not an error; an
unreachable node is an SshError; the command line is the argv quoted as the real one quotes it
(with `sudo -n --` for a sudo target), so a test can read exactly what would have run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from playbooks.remote import SEQUENCE, TRACKED
from playbooks.ssh import CommandResult, OutputSink, SshError, SshTarget, command_line


def unwrapped(argv: Sequence[str]) -> Sequence[str]:
    """The command itself when a step ran it in the wrapper that keeps its running file on the
    node (playbooks/remote.py): scripts and records read as the command the step ran."""
    if len(argv) > 6 and tuple(argv[:3]) == ("sh", "-c", TRACKED):
        return argv[6:]
    return argv


def running_file_of(argv: Sequence[str]) -> str | None:
    """The running file a step's wrapper or sequence (playbooks/remote.py) keeps on the node
    while the command runs; None for a command sent without one."""
    if len(argv) > 4 and tuple(argv[:3]) in (("sh", "-c", TRACKED), ("sh", "-c", SEQUENCE)):
        return argv[4] or None
    return None


def sequence(argv: Sequence[str]) -> tuple[str, list[tuple[str, ...]]] | None:
    """The marker and the commands of a sequence a step sent as one (playbooks/remote.py)."""
    if len(argv) < 6 or tuple(argv[:3]) != ("sh", "-c", SEQUENCE):
        return None
    mark, rest, commands = argv[5], list(argv[6:]), []
    while rest:
        count = int(rest[0])
        commands.append(tuple(rest[2 : 2 + count]))
        rest = rest[2 + count :]
    return mark, commands


@dataclass(frozen=True)
class Reply:
    exit_status: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True)
class Call:
    node: str
    argv: tuple[str, ...]
    command: str
    running: str | None = None  # the running file it ran under, if any


@dataclass
class FakeShell:
    """Replies are looked up by (node, argv), then by argv for any node; unscripted commands
    exit 0 with no output unless `strict`, when they fail the test loudly."""

    strict: bool = False
    calls: list[Call] = field(default_factory=list)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)
    closed: bool = False
    _replies: dict[tuple[str | None, tuple[str, ...]], list[Reply]] = field(default_factory=dict)

    def reply(self, argv: Sequence[str], *replies: Reply, node: str | None = None) -> None:
        """Script the answers to this argv (on `node`, or any node), in order; the last
        answer repeats."""
        self._replies.setdefault((node, tuple(argv)), []).extend(replies)

    def ran(self, node: str | None = None) -> list[tuple[str, ...]]:
        return [call.argv for call in self.calls if node in (None, call.node)]

    async def run(
        self,
        target: SshTarget,
        argv: Sequence[str],
        *,
        timeout: float = 600,
        on_output: OutputSink | None = None,
    ) -> CommandResult:
        if target.node in self.unreachable:
            raise SshError(f"cannot connect to {target.where}: unreachable", node=target.node)
        running = running_file_of(argv)
        if (batch := sequence(argv)) is not None:
            return await self._sequence(target, *batch, running=running, on_output=on_output)
        return await self.answer(target, unwrapped(argv), running=running, on_output=on_output)

    async def answer(
        self,
        target: SshTarget,
        argv: Sequence[str],
        *,
        running: str | None,
        on_output: OutputSink | None,
    ) -> CommandResult:
        """One command, as if run alone (also each of a sequence): recorded, and its scripted
        reply. A subclass models here what a command does on the node."""
        command = command_line(argv, sudo=target.sudo)
        self.calls.append(Call(target.node, tuple(argv), command, running))
        reply = self._next(target.node, tuple(argv), command)
        if on_output is not None:
            for line in (reply.stdout + reply.stderr).splitlines(keepends=True):
                await on_output(line)
        return CommandResult(
            target.node, command, reply.exit_status, reply.stdout, reply.stderr, 0.0
        )

    async def _sequence(
        self,
        target: SshTarget,
        mark: str,
        commands: list[tuple[str, ...]],
        *,
        running: str | None,
        on_output: OutputSink | None,
    ) -> CommandResult:
        """Each command as if run alone, in order up to the first that fails, its output after
        the marker the sequence prints, as the node's shell would."""
        stdout = stderr = ""
        for index, argv in enumerate(commands):
            result = await self.answer(target, argv, running=running, on_output=on_output)
            stdout += f"{mark} {index}\n{result.stdout}"
            stderr += f"{mark} {index}\n{result.stderr}"
            if not result.ok:
                break
        return CommandResult(target.node, result.command, result.exit_status, stdout, stderr, 0.0)

    async def run_many(
        self, targets: Sequence[SshTarget], argv: Sequence[str], *, timeout: float = 600
    ) -> list[CommandResult | SshError]:
        results: list[CommandResult | SshError] = []
        for target in targets:
            try:
                results.append(await self.run(target, argv, timeout=timeout))
            except SshError as error:
                results.append(error)
        return results

    async def sftp_get(self, target: SshTarget, remote: str, local: str) -> None:
        content = self.files.get((target.node, remote))
        if content is None:
            raise SshError(
                f"cannot copy {remote} from {target.where}: no such file", node=target.node
            )
        with open(local, "wb") as out:
            out.write(content)

    async def sftp_put(self, target: SshTarget, local: str, remote: str) -> None:
        if target.node in self.unreachable:
            raise SshError(f"cannot connect to {target.where}: unreachable", node=target.node)
        with open(local, "rb") as source:
            self.files[(target.node, remote)] = source.read()

    async def close(self) -> None:
        self.closed = True

    def _next(self, node: str, argv: tuple[str, ...], command: str) -> Reply:
        queue = self._replies.get((node, argv)) or self._replies.get((None, argv))
        if not queue:
            assert not self.strict, f"unscripted command on {node}: {command}"
            return Reply()
        return queue.pop(0) if len(queue) > 1 else queue[0]
