"""The unprivileged account the fleet logs in as: created on first use when we are root, shared
by every testbed on the machine (so nothing per-node lives in its home).
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
