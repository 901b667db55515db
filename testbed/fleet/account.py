"""The unprivileged account the fleet logs in as: created on first use when we are root, shared
by every testbed on the machine (so nothing per-node lives in its home); and what makes its
`sudo` real: a sudoers rule, and node filesystems owned by root as on a real host.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

FLEET_USER = "kubegate-fleet"
FLEET_HOME = Path("/var/lib/kubegate-fleet")
_LOCK = Path("/run/kubegate-fleet-account.lock")
# sudo skips names with a dot or ending in ~ in sudoers.d (sudoers(5), "@includedir").
SUDOERS = Path("/etc/sudoers.d/kubegate-fleet")
VISUDO = "/usr/sbin/visudo"
# Files kubeadm writes 0600 on a real control plane (kubeconfigs, private keys).
PRIVATE_SUFFIXES = (".conf", ".key", ".pem")  # the kubelet keeps its client key in a .pem


class FleetAccountError(RuntimeError):
    """The fleet account is missing and we may not create it."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path


def _lookup(name: str) -> Account | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def _create(name: str) -> None:
    # Parallel testbeds may race here: serialise, and re-check once we hold the lock.
    with _LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _lookup(name) is not None:
            return
        home = ["--create-home", "--home-dir", str(FLEET_HOME)]
        shell = ["--shell", "/bin/sh", "--comment", "kubegate testbed fleet"]
        subprocess.run(
            ["useradd", "--system", *home, *shell, name], check=True, capture_output=True
        )
        # useradd leaves the password field "!", which sshd (without PAM) reads as a locked
        # account and refuses even key logins; "*" means "no password" but not locked.
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)


def fleet_account() -> Account:
    """The account nodes are logged into: the dedicated one as root, else ourselves."""
    if os.geteuid() != 0:
        # An unprivileged sshd can only log its own user in.
        me = _lookup(pwd.getpwuid(os.geteuid()).pw_name)
        assert me is not None
        return me
    account = _lookup(FLEET_USER)
    if account is None:
        try:
            _create(FLEET_USER)
        except (OSError, subprocess.CalledProcessError) as error:
            raise FleetAccountError(
                f"cannot create the fleet account {FLEET_USER!r} ({error}); create it with: "
                f"useradd --system -m -d {FLEET_HOME} -s /bin/sh {FLEET_USER} && "
                f"usermod -p '*' {FLEET_USER}"
            ) from error
        account = _lookup(FLEET_USER)
    if account is None:
        raise FleetAccountError(f"the fleet account {FLEET_USER!r} does not exist")
    return account


def sudoers_rule(user: str, shim_dir: str) -> str:
    """Password-less root for the fleet account, as kubegate's `sudo -n --` needs (sudoers(5)).

    Not a command list: kubegate runs `env ETCDCTL_API=3 etcdctl`, `mkdir`, `mv`, `test` and the
    package tools, and a list holding `env` is ALL in disguise. What is limited: only this
    account, only to root, and only the two variables that name the node survive (env_reset
    drops the rest). secure_path puts the node's shims where real sudo finds them.
    """
    return (
        "# kubegate testbed: the fleet account may run commands as root without a password.\n"
        f'Defaults:{user} env_keep += "TESTBED_NODE TESTBED_STATE"\n'
        f'Defaults:{user} secure_path = "{shim_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:'
        '/usr/bin:/sbin:/bin"\n'
        f"Defaults:{user} !lecture\n"
        f"{user} ALL = (root) NOPASSWD: ALL\n"
    )


def grant_sudo(user: str, shim_dir: str) -> None:
    """Install the sudoers rule (checked by visudo first; a broken sudoers locks sudo out)."""
    rule = sudoers_rule(user, shim_dir)
    with _LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if SUDOERS.exists() and SUDOERS.read_text() == rule:
            return
        partial = SUDOERS.with_name("kubegate-fleet.tmp")  # the dot keeps sudo from reading it
        partial.write_text(rule)
        partial.chmod(0o440)
        checked = subprocess.run([VISUDO, "-cf", str(partial)], capture_output=True, text=True)
        if checked.returncode != 0:
            partial.unlink()
            raise FleetAccountError(f"the sudoers rule does not parse: {checked.stdout}")
        partial.replace(SUDOERS)


def own_as_root(tree: Path) -> None:
    """A node's filesystem as on a real host: root's, kubeconfigs and keys readable by root only
    (kubeadm writes them 0600), so the login user needs sudo to read or change them."""
    for directory, subdirs, files in os.walk(tree):
        os.chown(directory, 0, 0)
        os.chmod(directory, 0o755)
        for name in subdirs:
            os.chown(os.path.join(directory, name), 0, 0, follow_symlinks=False)
        for name in files:
            path = os.path.join(directory, name)
            os.chown(path, 0, 0, follow_symlinks=False)
            os.chmod(path, 0o600 if name.endswith(PRIVATE_SUFFIXES) else 0o644)
