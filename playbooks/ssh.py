"""Running commands on nodes over SSH (asyncssh): pinned host keys, key or certificate login,
per-command timeouts, bounded fan-out, kept connections, output streamed as it comes.

Every command is an argv list quoted with shlex here; there is no free-form shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from playbooks.errors import OperationError
from playbooks.private_files import create_private
from playbooks.ssh_credentials import Credentials as Credentials
from playbooks.ssh_identity import (
    IDENTITY_PROBE,
    HostIdentity,
    host_identity,
    silent_host,
    wrong_host,
)

OutputSink = Callable[[str], Awaitable[None]]
REFUSED_KEY = " (permission denied)"


class SshError(OperationError):
    """A node could not run the command; the message names the node and what to do."""

    def __init__(self, message: str, *, node: str) -> None:
        super().__init__(message)
        self.node = node


class HostKeyError(SshError):
    """The node presented a host key that is not pinned: nothing was run there."""


class WrongHostError(SshError):
    """The host at the node's address is another Node (or says nothing of who it is): nothing
    but the identity probe ran there. `identity` is who it said it is, when it said."""

    def __init__(self, message: str, *, node: str, identity: HostIdentity | None = None) -> None:
        super().__init__(message, node=node)
        self.identity = identity


@dataclass(frozen=True)
class SshTarget:
    node: str
    host: str
    port: int = 22
    user: str = "root"
    sudo: bool = False
    # Whether the host must prove it is the Node `node` before anything runs there; False only
    # for a host that is not a Node yet (being provisioned: `node` is what it will register as).
    check_identity: bool = True

    @property
    def where(self) -> str:
        return f"{self.node} ({self.host}:{self.port})"


@dataclass(frozen=True)
class CommandResult:
    node: str
    command: str
    exit_status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def tail(self, lines: int = 20) -> str:
        text = (self.stdout + ("\n" + self.stderr if self.stderr else "")).rstrip()
        return "\n".join(text.splitlines()[-lines:])


def command_line(argv: Sequence[str], *, sudo: bool = False) -> str:
    words = ["sudo", "-n", "--", *argv] if sudo else list(argv)
    return " ".join(shlex.quote(word) for word in words)


STOP_GRACE_S = 3.0  # how long a TERMed remote command gets before it is KILLed


class _PinningClient(asyncssh.SSHClient):
    """Remembers the host key a server presented when it was not pinned, to name it."""

    def __init__(self) -> None:
        self.rejected_key: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.rejected_key = key
        return False  # never trust on first use


@dataclass
class SshExecutor:
    known_hosts: str  # OpenSSH known_hosts text: the pinned host keys
    credentials: Credentials
    connect_timeout: float = 10.0
    # A copy (an etcd snapshot, a PKI archive) that makes no progress must not hold a job.
    transfer_timeout: float = 600.0
    max_parallel: int = 64
    _connections: dict[tuple[str, int, str], asyncssh.SSHClientConnection] = field(
        default_factory=dict
    )
    _connecting: dict[tuple[str, int, str], asyncio.Lock] = field(default_factory=dict)
    # Who each kept connection's host is, asked once per connection (a new one asks again).
    _identities: dict[tuple[str, int, str], HostIdentity] = field(default_factory=dict)
    _limit: asyncio.Semaphore | None = None
    _pinned: asyncssh.SSHKnownHosts | None = None

    def __post_init__(self) -> None:
        self._pinned = asyncssh.import_known_hosts(self.known_hosts)  # parsed once, not per node

    async def run(
        self,
        target: SshTarget,
        argv: Sequence[str],
        *,
        timeout: float = 600,
        on_output: OutputSink | None = None,
    ) -> CommandResult:
        """Run one command; a non-zero exit is a result, not an error. Cancelling ends it remotely."""
        limit = self._limit = self._limit or asyncio.Semaphore(self.max_parallel)
        async with limit:
            connection = await self._connection(target)
            command = command_line(argv, sudo=target.sudo)
            started = time.monotonic()
            try:
                process = await connection.create_process(command, stdin=asyncssh.DEVNULL)
            except (OSError, asyncssh.Error) as error:
                self._forget(target)
                raise SshError(
                    f"cannot start a command on {target.where}: {error}", node=target.node
                ) from error
            try:
                async with asyncio.timeout(timeout):
                    stdout, stderr = await asyncio.gather(
                        _collect(process.stdout, on_output), _collect(process.stderr, on_output)
                    )
                    completed = await process.wait()
            except TimeoutError as error:
                await _stop(process)
                raise SshError(
                    f"`{command}` on {target.where} did not finish within {timeout:.0f} s; it was stopped",
                    node=target.node,
                ) from error
            except asyncio.CancelledError:
                # A cancelled job must not leave the command running: signal it, then hang up.
                await _stop(process)
                raise
            except (OSError, asyncssh.Error) as error:
                self._forget(target)
                raise SshError(
                    f"the connection to {target.where} broke while running `{command}`: {error}",
                    node=target.node,
                ) from error
            status = completed.exit_status if completed.exit_status is not None else 255
            if completed.exit_signal:
                stderr += f"\n(killed by signal {completed.exit_signal[0]})"
            return CommandResult(
                target.node, command, status, stdout, stderr, time.monotonic() - started
            )

    async def run_many(
        self, targets: Sequence[SshTarget], argv: Sequence[str], *, timeout: float = 600
    ) -> list[CommandResult | SshError]:
        async def one(target: SshTarget) -> CommandResult | SshError:
            try:
                return await self.run(target, argv, timeout=timeout)
            except SshError as error:
                return error

        return list(await asyncio.gather(*(one(target) for target in targets)))

    async def sftp_get(self, target: SshTarget, remote: str, local: str) -> None:
        """Copy `remote` into a new local file that is 0600 before a byte arrives; a copy that
        fails midway is removed."""
        connection = await self._connection(target)
        await asyncio.to_thread(lambda: os.close(create_private(local)))
        try:
            async with connection.start_sftp_client() as sftp:
                # asyncssh opens the local file "wb": it writes into ours, keeping its mode.
                await self._within_transfer_timeout(target, sftp.get(remote, local))
        except (OSError, asyncssh.Error, TimeoutError) as error:
            await asyncio.to_thread(Path(local).unlink, missing_ok=True)
            raise SshError(
                f"cannot copy {remote} from {target.where}: {self._why(error)}", node=target.node
            ) from error

    async def sftp_put(self, target: SshTarget, local: str, remote: str) -> None:
        """Copy `local` to a new `remote` file that is 0600 (the login user's) before a byte
        arrives; a copy that fails midway is removed."""
        connection = await self._connection(target)
        try:
            async with connection.start_sftp_client() as sftp:
                private = asyncssh.SFTPAttrs(permissions=0o600)
                async with sftp.open(remote, "wb", private):
                    pass  # created empty and 0600; put truncates it and keeps that mode
                await self._within_transfer_timeout(target, sftp.put(local, remote))
        except (OSError, asyncssh.Error, TimeoutError) as error:
            with contextlib.suppress(OSError, asyncssh.Error, SshError, TimeoutError):
                async with asyncio.timeout(self.connect_timeout):
                    connection = await self._connection(target)  # anew after a timeout
                    async with connection.start_sftp_client() as sftp:
                        await sftp.remove(remote)
            raise SshError(
                f"cannot copy {local} to {remote} on {target.where}: {self._why(error)}",
                node=target.node,
            ) from error

    async def _within_transfer_timeout(self, target: SshTarget, copy: Awaitable[None]) -> None:
        """A copy that does not finish in time closes the connection: sftp-server may be stuck
        in a read that never returns (a hung disk), and only that ends its session."""
        try:
            async with asyncio.timeout(self.transfer_timeout):
                await copy
        except TimeoutError:
            self._forget(target)
            raise

    def _why(self, error: BaseException) -> str:
        if isinstance(error, TimeoutError):
            return f"it did not finish within {self.transfer_timeout:.0f} s"
        return str(error)

    async def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        for connection in self._connections.values():
            with contextlib.suppress(Exception):
                await connection.wait_closed()
        self._connections.clear()
        self._identities.clear()

    def _forget(self, target: SshTarget) -> None:
        key = (target.host, target.port, target.user)
        self._identities.pop(key, None)
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    async def _connection(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        key = (target.host, target.port, target.user)
        lock = self._connecting.setdefault(key, asyncio.Lock())
        async with lock:
            connection = self._connections.get(key)
            if connection is None or connection.is_closed():
                self._identities.pop(key, None)
                connection = self._connections[key] = await self._connect(target)
            if target.check_identity:
                await self._check_identity(connection, target)
            return connection

    async def _check_identity(
        self, connection: asyncssh.SSHClientConnection, target: SshTarget
    ) -> None:
        """Refuse a host that is not the Node `target.node`: before any command of a step runs
        there, never on the strength of an address alone."""
        key = (target.host, target.port, target.user)
        identity = self._identities.get(key)
        if identity is None:
            identity = self._identities[key] = await self._ask_identity(connection, target)
        if identity.name != target.node.lower():
            said = wrong_host(target.node, target.host, identity)
            raise WrongHostError(said, node=target.node, identity=identity)

    async def _ask_identity(
        self, connection: asyncssh.SSHClientConnection, target: SshTarget
    ) -> HostIdentity:
        command = command_line(IDENTITY_PROBE, sudo=target.sudo)
        try:
            async with asyncio.timeout(self.connect_timeout):
                answer = await connection.run(command, stdin=asyncssh.DEVNULL)
        except TimeoutError as error:
            raise SshError(
                f"{target.where} did not say which Node it is within "
                f"{self.connect_timeout:.0f} s; nothing was run there",
                node=target.node,
            ) from error
        except (OSError, asyncssh.Error) as error:
            raise SshError(
                f"cannot ask {target.where} which Node it is: {error}", node=target.node
            ) from error
        identity = host_identity(str(answer.stdout or ""))
        if answer.exit_status != 0 or identity is None:
            said = silent_host(target.node, target.host, answer.exit_status, answer.stderr)
            raise WrongHostError(said, node=target.node)
        return identity

    async def _connect(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        await self.credentials.fresh()
        try:
            return await self._log_in(target)
        except SshError as refused:
            if not refused.message.endswith(REFUSED_KEY) or self.credentials.renew is None:
                raise
        # Refused with a certificate kubegate thought valid (clocks disagree): once more anew.
        await self.credentials.fresh(force=True)
        return await self._log_in(target)

    async def _log_in(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        pinning = _PinningClient()
        try:
            async with asyncio.timeout(self.connect_timeout):
                connection, _ = await asyncssh.create_connection(
                    lambda: pinning,
                    target.host,
                    target.port,
                    username=target.user,
                    known_hosts=self._pinned,
                    client_keys=self.credentials.client_keys(),
                    agent_path=None,
                    config=[],
                    preferred_auth="publickey",
                    # A kept connection whose host died is noticed, not waited on for ever.
                    keepalive_interval=15,
                    keepalive_count_max=3,
                )
        except asyncssh.HostKeyNotVerifiable as error:
            raise HostKeyError(
                self._host_key_message(target, pinning.rejected_key), node=target.node
            ) from error
        except asyncssh.PermissionDenied as error:
            raise SshError(
                f"{target.where} refused kubegate's key for user {target.user}{REFUSED_KEY}",
                node=target.node,
            ) from error
        except (OSError, asyncssh.Error) as error:
            raise SshError(
                f"cannot connect to {target.where}: {error}", node=target.node
            ) from error
        except TimeoutError as error:
            raise SshError(
                f"no SSH answer from {target.where} within {self.connect_timeout:.0f} s",
                node=target.node,
            ) from error
        return connection

    def _host_key_message(self, target: SshTarget, presented: asyncssh.SSHKey | None) -> str:
        fingerprint = presented.get_fingerprint() if presented else "(unknown)"
        pinned = pinned_keys(self.known_hosts, target.host, target.port)
        if pinned:
            return (
                f"the host key of {target.where} CHANGED: it presented {fingerprint}, but "
                f"{', '.join(k.get_fingerprint() for k in pinned)} is pinned. Nothing was run there. "
                "If the host was rebuilt, update the pinned key; otherwise treat it as an attack."
            )
        return (
            f"the host key of {target.where} is not pinned (it presented {fingerprint}). "
            "Nothing was run there. Add the node's key to the known_hosts kubegate uses."
        )


def pinned_keys(known_hosts: str, host: str, port: int) -> list[asyncssh.SSHKey]:
    trusted, *_ = asyncssh.match_known_hosts(
        asyncssh.import_known_hosts(known_hosts), host, host, port if port != 22 else None
    )
    return list(trusted)


async def _collect(stream: Any, on_output: OutputSink | None) -> str:
    chunks = []
    async for line in stream:
        chunks.append(line)
        if on_output is not None:
            await on_output(line)
    return "".join(chunks)


async def _stop(process: asyncssh.SSHClientProcess[str]) -> None:
    """End a remote command: TERM first, which sudo relays to the command it runs (a KILL would
    end sudo alone and leave its command running under sudo's monitor, as `use_pty` makes it);
    KILL only if it is still there after a grace period. Then hang up."""
    with contextlib.suppress(OSError, asyncssh.Error):
        process.send_signal("TERM")
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), STOP_GRACE_S)
        except TimeoutError:
            process.kill()
    process.close()
