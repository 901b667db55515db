"""A step's commands on one node over SSH: run in order, halting at the first that fails.

A failure becomes the step's result: one line naming the command and its exit code, and the
tail of its output, as the thread shows it. A step's long commands run inside a wrapper that
keeps a running file on the node; after a restart `wait_for_leftover` reads it and waits.
Several commands in order go to the node as one sequence (one SSH session, one sudo), which
runs each in turn as the wrapper does and says where each one's output starts.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from playbooks.base import ClusterHandle, RemoteShell, StepContext, StepResult
from playbooks.errors import OperationError
from playbooks.ssh import CommandResult, OutputSink, SshTarget

# Where a node keeps the running file of each command a kubegate step started there: root's,
# 0700, one 0600 file per job and step, removed when the command ends, left behind if the
# command or its wrapper was killed (a rebooted host, a SIGKILL).
RUNNING_DIR = "/var/lib/kubegate/running"

# Runs "$@" as a child and waits for it, its running file written once it started (the
# child's pid and start time, which tell it from a later process reusing the pid, and the
# label). stdout, stderr, umask and environment are the command's own, its stdin /dev/null
# (as kubegate gives every command); a TERM, INT or HUP the wrapper gets (sudo relays a
# cancel's TERM to it) goes on to the command as TERM. The exit status is the command's; one
# killed by a signal exits 128+N, as a shell reports it. Values arrive as $1…, never as part
# of the script.
TRACKED = r"""
file=$1 label=$2; shift 2
mkdir -p -m 700 "${file%/*}" || exit 125
started() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
(umask 077; printf '%s %s\n%s\n' "$child" "$(started "$child")" "$label" > "$file")
while :; do
  wait "$child"; status=$?
  kill -0 "$child" 2>/dev/null || break
done
rm -f "$file"
exit "$status"
"""


# Runs commands one after another as TRACKED runs one (running file, stdin, signals), stopping
# at the first that fails or when told to stop. Arguments: the running file ("" for none), a
# marker, then per command its word count, its label and its words. Before each command the
# marker and the command's index go to stdout and stderr, so the output of the one that failed
# can be told from the others'. `eval` only ever sees "${N}" references built here from digits:
# the words are expanded as they are, never parsed as shell text.
SEQUENCE = r"""
file=$1 mark=$2 at=3 index=0 child= stop=
[ -z "$file" ] || mkdir -p -m 700 "${file%/*}" || exit 125
started() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }
trap 'stop=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' TERM INT HUP
while [ "$at" -le $# ]; do
  eval "count=\${$at} label=\${$((at + 1))}"
  k=$((at + 2)) end=$((at + 2 + count)) words=
  while [ "$k" -lt "$end" ]; do words="$words \"\${$k}\""; k=$((k + 1)); done
  echo "$mark $index"; echo "$mark $index" >&2
  eval "$words &"
  child=$!
  [ -z "$file" ] || (umask 077; printf '%s %s\n%s\n' "$child" "$(started "$child")" "$label" > "$file")
  while :; do
    wait "$child"; status=$?
    kill -0 "$child" 2>/dev/null || break
  done
  [ -n "$stop" ] && [ "$status" -eq 0 ] && status=143
  if [ "$status" -ne 0 ]; then [ -z "$file" ] || rm -f "$file"; exit "$status"; fi
  at=$end index=$((index + 1))
done
[ -z "$file" ] || rm -f "$file"
exit 0
"""


# Answers whether a running file's command is still there: "running PID LABEL"; "gone" when
# the file outlived its command (both killed, the host rebooted): removed now; or "none".
LEFTOVER = r"""
file=$1
[ -f "$file" ] || { echo none; exit 0; }
{ read -r pid start; read -r label; } < "$file"
s=$(cat "/proc/$pid/stat" 2>/dev/null) && s=${s##*) } && set -- $s
if [ -n "$start" ] && [ "${20:-}" = "$start" ]; then echo "running $pid $label"; exit 0; fi
rm -f "$file"
echo gone
"""
LEFTOVER_POLL_S = 1.0


def running_file(job_id: int, step: str) -> str:
    """The node's running file for one job's step (a step name is a fixed word of ours)."""
    return f"{RUNNING_DIR}/job-{job_id}.{step}"


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

    async def run(
        self,
        command: RemoteCommand,
        *,
        running: str | None = None,
        on_output: OutputSink | None = None,
    ) -> CommandResult:
        """Run the command; with `running` (a `running_file`), inside the tracking wrapper;
        `on_output` gets its output line by line as it comes (the wrapper passes it through)."""
        argv = command.argv
        if running is not None:
            argv = ("sh", "-c", TRACKED, "kubegate-running", running, command.label, *argv)
        return await self.ssh.run(self.target, argv, timeout=self.timeout, on_output=on_output)

    async def run_in_order(
        self, commands: Sequence[RemoteCommand], *, running: str | None = None
    ) -> StepResult | list[str]:
        """Each command in turn: the failed result of the first that fails, else their labels."""
        if len(commands) == 1:
            result = await self.run(commands[0], running=running)
            return [commands[0].label] if result.ok else failed(result, commands[0].label)
        mark = f"## kubegate-{secrets.token_hex(6)}"
        argv: tuple[str, ...] = ("sh", "-c", SEQUENCE, "kubegate-sequence", running or "", mark)
        for command in commands:
            argv += (str(len(command.argv)), command.label, *command.argv)
        # Each command keeps the time it had alone.
        result = await self.ssh.run(self.target, argv, timeout=self.timeout * len(commands))
        if result.ok:
            return [command.label for command in commands]
        return sequence_failed(result, commands, mark)

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


def sequence_failed(
    result: CommandResult, commands: Sequence[RemoteCommand], mark: str
) -> StepResult:
    """The failed result of a sequence: the command that failed and its own output's tail."""
    started = re.findall(rf"^{re.escape(mark)} (\d+)$", result.stdout, flags=re.MULTILINE)
    if not started:  # the sequence itself could not start (its running file's directory)
        return failed(result, "keep the running file of " + commands[0].label)
    index = int(started[-1])
    own = CommandResult(
        result.node,
        result.command,
        result.exit_status,
        _after_last(result.stdout, f"{mark} {index}"),
        _after_last(result.stderr, f"{mark} {index}"),
        result.seconds,
    )
    return failed(own, commands[index].label)


def _after_last(text: str, line: str) -> str:
    _, found, after = text.rpartition(line + "\n")
    return after if found else text


async def wait_for_leftover(ctx: StepContext, node: NodeRef, step: str) -> None:
    """Wait until the command this job's `step` started on `node` before kubegate restarted (or
    lost its connection) has ended, so that it never runs twice at once; bounded by the SSH
    command timeout. The step then decides, as on any resume, whether it took effect."""
    remote = await Remote.open(ctx, node)
    check = RemoteCommand.script(
        "check for a leftover command", LEFTOVER, running_file(ctx.job_id, step)
    )
    deadline, told = time.monotonic() + remote.timeout, False
    while True:
        answer = (await remote.answer(check)) or ""
        if not answer.startswith("running "):
            if told:
                await ctx.say(f"{node.name}: that command has ended; kubegate goes on from there")
            return
        _, pid, label = answer.split(" ", 2)
        if not told:
            told = True
            await ctx.say(
                f"{node.name}: waiting for the `{label}` kubegate started before it restarted "
                f"(pid {pid})"
            )
        if time.monotonic() >= deadline:
            raise OperationError(
                f"{node.name}: `{label}` (pid {pid}), started by this job before kubegate "
                f"restarted, is still running after {remote.timeout:.0f} s; kubegate did not "
                "start it again. Check the node, then [Retry step] or [Abort]"
            )
        await asyncio.sleep(LEFTOVER_POLL_S)
