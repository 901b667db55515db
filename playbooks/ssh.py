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

OutputSink = Callable[[str], Awaitable[None]]
REFUSED_KEY = " (permission denied)"


class SshError(OperationError):
    """A node could not run the command; the message names the node and what to do."""

    def __init__(self, message: str, *, node: str) -> None:
        super().__init__(message)
        self.node = node


class HostKeyError(SshError):
    """The node presented a host key that is not pinned: nothing was run there."""


@dataclass(frozen=True)
class SshTarget:
    node: str
    host: str
    port: int = 22
    user: str = "root"
    sudo: bool = False

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


# A certificate is renewed once less than this share of its lifetime is left (and never
# later than RENEW_MARGIN_S before it ends): a login always presents one that is valid.
RENEW_AT_SHARE_LEFT = 0.25
RENEW_MARGIN_S = 5.0
STOP_GRACE_S = 3.0  # how long a TERMed remote command gets before it is KILLed


@dataclass
class Credentials:
    """How kubegate logs in: a private key, optionally with a (Vault-signed) certificate that
    `renew` replaces before it expires, so a job longer than its TTL keeps logging in."""

    private_key: asyncssh.SSHKey
    certificate: asyncssh.SSHCertificate | None = None
    renew: Callable[[], Awaitable[asyncssh.SSHCertificate]] | None = None
    renewals: int = 0
    _renewing: asyncio.Lock = field(default_factory=asyncio.Lock)

    def client_keys(self) -> list[Any]:
        return [(self.private_key, self.certificate) if self.certificate else self.private_key]

    def expiring(self, now: float) -> bool:
        certificate = self.certificate
        if certificate is None or self.renew is None:
            return False
        after, before = validity(certificate)
        left = before - now
        return left < max(RENEW_MARGIN_S, RENEW_AT_SHARE_LEFT * (before - after))

    async def fresh(self, *, force: bool = False) -> None:
        """Renew the certificate if it is expiring (or `force`: the server refused it)."""
        if self.renew is None or self.certificate is None:
            return
        async with self._renewing:
            if force or self.expiring(time.time()):
                self.certificate = await self.renew()
                self.renewals += 1


def validity(certificate: asyncssh.SSHCertificate) -> tuple[float, float]:
    """(valid after, valid before) in epoch seconds. asyncssh keeps an OpenSSH certificate's
    window only in these attributes; without them, treat it as valid for ever (never renew)."""
    after = getattr(certificate, "_valid_after", 0)
    before = getattr(certificate, "_valid_before", 2**64 - 1)
    return float(after), float(before)


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
    max_parallel: int = 64
    _connections: dict[tuple[str, int, str], asyncssh.SSHClientConnection] = field(
        default_factory=dict
    )
    _connecting: dict[tuple[str, int, str], asyncio.Lock] = field(default_factory=dict)
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
                await sftp.get(remote, local)
        except (OSError, asyncssh.Error) as error:
            await asyncio.to_thread(Path(local).unlink, missing_ok=True)
            raise SshError(
                f"cannot copy {remote} from {target.where}: {error}", node=target.node
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
                await sftp.put(local, remote)
        except (OSError, asyncssh.Error) as error:
            with contextlib.suppress(OSError, asyncssh.Error):
                async with connection.start_sftp_client() as sftp:
                    await sftp.remove(remote)
            raise SshError(
                f"cannot copy {local} to {remote} on {target.where}: {error}", node=target.node
            ) from error

    async def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        for connection in self._connections.values():
            with contextlib.suppress(Exception):
                await connection.wait_closed()
        self._connections.clear()

    def _forget(self, target: SshTarget) -> None:
        connection = self._connections.pop((target.host, target.port, target.user), None)
        if connection is not None:
            connection.close()

    async def _connection(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        key = (target.host, target.port, target.user)
        lock = self._connecting.setdefault(key, asyncio.Lock())
        async with lock:
            connection = self._connections.get(key)
            if connection is not None and not connection.is_closed():
                return connection
            self._connections[key] = await self._connect(target)
            return self._connections[key]

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
