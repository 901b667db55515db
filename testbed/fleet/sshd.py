"""One real OpenSSH sshd per node: its config, its start (in private mount and UTS namespaces
when we can, so the node's /etc/kubernetes and /var/lib/kubegate and its host name are its own,
as on a machine of its own), readiness and killing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testbed.fleet.account import grant_sudo, own_as_root

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")
READY_TIMEOUT_S = 15.0
# Where every node's shims appear inside its sshd's mount namespace: one path for all nodes, so
# one sudoers secure_path serves them all.
NODE_BIN = "/opt/kubegate-testbed/bin"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SshdError(RuntimeError):
    pass


@dataclass(frozen=True)
class SshdConfig:
    address: str
    port: int
    host_key: Path
    authorized_keys: Path
    user_ca_public_key: Path
    user: str
    environment: dict[str, str]
    # (node's own directory, path it appears at on the node), bind-mounted when possible.
    mounts: list[tuple[Path, str]] = field(default_factory=list)
    # The host's name (uname -n) in the node's own UTS namespace, set with the mounts.
    hostname: str = ""

    def render(self) -> str:
        env = " ".join(f"{key}={value}" for key, value in self.environment.items())
        return f"""\
ListenAddress {self.address}:{self.port}
HostKey {self.host_key}
PidFile none
AllowUsers {self.user}
AuthenticationMethods publickey
PubkeyAuthentication yes
AuthorizedKeysFile {self.authorized_keys}
TrustedUserCAKeys {self.user_ca_public_key}
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
StrictModes no
PermitUserEnvironment no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
MaxStartups 200
MaxSessions 100
LoginGraceTime 30
LogLevel INFO
SetEnv {env}
Subsystem sftp internal-sftp
"""


@functools.cache
def can_use_mount_namespaces() -> bool:
    """Root alone is not enough: containers without CAP_SYS_ADMIN refuse mounts. Probe once."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--mount", "--propagation", "private", "mount", "--bind", "/tmp", "/tmp"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def node_session(
    name: str, state_dir: Path, node_paths: Sequence[str], user: str
) -> tuple[list[tuple[Path, str]], dict[str, str]]:
    """The bind mounts and environment of a node's SSH sessions.

    With mount namespaces the node's paths are its own and `sudo` is the real one: the node's
    root-owned files, the sudoers rule, the shims at NODE_BIN. Without (not root, or no
    CAP_SYS_ADMIN) the shims map paths themselves and a stand-in sudo runs commands as the login
    user, marking them as root's (TESTBED_SUDO): no sudoers can be installed there.
    """
    mounts = [(state_dir / "root" / path.lstrip("/"), path) for path in node_paths]
    real = can_use_mount_namespaces()
    if real:
        # The node's own /etc/hosts names its own host name (the UTS namespace gives it one).
        mounts.append((state_dir / "root/etc/hosts", "/etc/hosts"))
        mounts.append((state_dir / "bin", NODE_BIN))
        grant_sudo(user, NODE_BIN)
        own_as_root(state_dir / "root")
    shims = NODE_BIN if real else str(state_dir / "bin")
    environment = {
        "TESTBED_NODE": name,
        "TESTBED_STATE": str(state_dir),
        "PATH": f"{shims}:{SYSTEM_PATH}",
    }
    return mounts, environment


def node_hostname(state_dir: Path) -> str:
    """The name a node's machine calls itself: its provider's for a bare host (layout sets it),
    else its Node name, as kubeadm registers a Node under the host's name (lowercased)."""
    config = json.loads((state_dir / "config.json").read_text())
    return str(config.get("hostname") or config["name"])


def _command(config_path: Path, mounts: list[tuple[Path, str]], hostname: str) -> list[str]:
    sshd = [SSHD, "-D", "-e", "-f", str(config_path)]
    if not mounts or not can_use_mount_namespaces():
        return sshd
    binds = [f"mount --bind {shlex.quote(str(src))} {shlex.quote(dst)}" for src, dst in mounts]
    # A UTS namespace of its own gives the node its own host name (sethostname(2) there leaves
    # the machine's alone), so uname -n on each node answers as a real host of that name does.
    naming = [f"hostname {shlex.quote(hostname)}"] if hostname else []
    script = " && ".join([*binds, *naming, "exec " + shlex.join(sshd)])
    # unshare(1) execs in place, so the pid we hold is the listening sshd's.
    uts = ["--uts"] if hostname else []
    return ["unshare", "--mount", *uts, "--propagation", "private", "/bin/sh", "-c", script]


def prepare_mount_points(mounts: list[tuple[Path, str]]) -> None:
    """Bind mounts need their targets on the host; we add empty ones where missing."""
    if not can_use_mount_namespaces():
        return
    for source, target in mounts:
        if source.is_dir():
            Path(target).mkdir(parents=True, exist_ok=True)
        elif not Path(target).exists():
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).touch()


async def spawn(
    config: SshdConfig, config_path: Path, log_path: Path
) -> asyncio.subprocess.Process:
    """Start sshd and return once it listens; raises SshdError if it could not bind or died."""
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)  # sshd refuses to start without it
    config_path.write_text(config.render())
    with log_path.open("ab") as log:
        start_offset = log.tell()
        process = await asyncio.create_subprocess_exec(
            *_command(config_path, config.mounts, config.hostname),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    await _wait_listening(process, config, log_path, start_offset)
    return process


async def _wait_listening(
    process: asyncio.subprocess.Process, config: SshdConfig, log_path: Path, offset: int
) -> None:
    # sshd logs this line after listen(2) succeeded; a mere TCP connect could reach another
    # testbed's sshd that holds the same address and port.
    ready = f"Server listening on {config.address} port {config.port}".encode()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        with log_path.open("rb") as log:
            log.seek(offset)
            text = log.read()
        if ready in text:
            return
        if process.returncode is not None or b"Cannot bind any address" in text:
            await terminate(process)
            raise SshdError(f"sshd on {config.address}:{config.port} failed: {text.decode()}")
        if time.monotonic() > deadline:
            await terminate(process)
            raise SshdError(f"sshd on {config.address}:{config.port} did not start in time")
        await asyncio.sleep(0.005)


def _process_tree() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    return children


def _descendants(root: int, children: dict[int, list[int]]) -> list[int]:
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


async def terminate(*processes: asyncio.subprocess.Process) -> None:
    """Kill sshd and every session it forked: they run setsid(), so a process group won't do."""
    tree = _process_tree()
    for process in processes:
        if process.returncode is None:
            for pid in [process.pid, *_descendants(process.pid, tree)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    await asyncio.gather(*(process.wait() for process in processes))
