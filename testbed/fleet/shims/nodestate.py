"""What every shim shares: the node it runs on (from sshd's SetEnv), its locked state file, its
call log, its fault switches, path mapping onto the node's own root, and the apiserver client.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from typing import Any

# Paths that are the node's own: <state>/root/<path> (the layout bind-mounts these).
NODE_PATHS = (
    "/etc/kubernetes",
    "/var/lib/kubegate",
    "/var/lib/etcd",
    "/etc/containerd",
    "/etc/sysctl.d",
    "/etc/modules-load.d",
    "/etc/apt",
    "/var/lib/apt",
    "/etc/yum.repos.d",
    "/var/cache/dnf",
    "/var/lib/kubelet",
    "/etc/fstab",
)
# Set by the stand-in sudo (fleets without mount namespaces, where real sudo cannot run the
# node's shims): the command counts as run by root.
SIMULATED_ROOT = "TESTBED_SUDO"


class Node:
    def __init__(self) -> None:
        self.name = os.environ.get("TESTBED_NODE", "")
        self.state_dir = os.environ.get("TESTBED_STATE", "")
        if not self.name or not self.state_dir:
            raise SystemExit("testbed shim: TESTBED_NODE/TESTBED_STATE not set (not on a node)")
        self._config: dict[str, Any] | None = None
        self._namespaced: bool | None = None

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            with open(os.path.join(self.state_dir, "config.json")) as file:
                self._config = json.load(file)
        return self._config

    def path(self, name: str) -> str:
        return os.path.join(self.state_dir, name)

    def host_path(self, path: str) -> str:
        """Where the node's `path` really is: itself inside sshd's mount namespace, where
        those paths are bind mounts of the node's own; else under <state>/root."""
        if self._in_namespace():
            return path
        for prefix in NODE_PATHS:
            if path == prefix or path.startswith(prefix + "/"):
                return os.path.join(self.state_dir, "root", path.lstrip("/"))
        return path

    def has_real_sudo(self) -> bool:
        """Sessions in a mount namespace have the node's shims at one path and a sudoers rule."""
        return self._in_namespace()

    def privileged(self) -> bool:
        """Whether the command runs as root: with real sudo only the effective uid says so."""
        if self._in_namespace():
            return os.geteuid() == 0
        return os.geteuid() == 0 or os.environ.get(SIMULATED_ROOT) == "1"

    def _in_namespace(self) -> bool:
        if self._namespaced is None:
            own = os.path.join(self.state_dir, "root", "etc", "kubernetes")
            try:
                self._namespaced = os.path.samefile("/etc/kubernetes", own)
            except OSError:
                self._namespaced = False
        return self._namespaced

    def record(self, argv: list[str]) -> None:
        line = json.dumps(
            {"argv": argv, "time": time.time(), "node": self.name, "pid": os.getpid()}
        )
        # One O_APPEND write per call: concurrent shims never interleave within a line.
        fd = os.open(self.path("calls.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        # Read-only is enough for flock, so root's and the login user's shims share one lock file
        # whoever created it.
        fd = os.open(self.path("state.lock"), os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read_state(self) -> dict[str, Any]:
        with open(self.path("state.json")) as file:
            state: dict[str, Any] = json.load(file)
            return state

    @contextlib.contextmanager
    def state(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write of state.json under the node's lock."""
        with self.locked():
            state = self.read_state()
            yield state
            self._write_json("state.json", state)

    def faults(self) -> dict[str, Any]:
        try:
            with open(self.path("faults.json")) as file:
                faults: dict[str, Any] = json.load(file)
                return faults
        except (OSError, ValueError):
            return {}

    def take_fault(self, argv: list[str]) -> tuple[str, dict[str, Any]] | None:
        """The fault matching argv's longest prefix, counting one use of it."""
        with self.locked():
            faults = self.faults()
            keys = [
                k
                for k, f in faults.items()
                if argv[: len(k.split())] == k.split() and not f.get("exhausted")
            ]
            if not keys:
                return None
            key = max(keys, key=lambda k: len(k.split()))
            fault = faults[key]
            if fault.get("remaining") is not None:
                fault["remaining"] -= 1
                if fault["remaining"] <= 0 and fault["action"] == "hang":
                    faults[key] = {**fault, "exhausted": True}  # its callers hang until cleared
                elif fault["remaining"] <= 0:
                    del faults[key]
                self._write_json("faults.json", faults)
            return key, fault

    def _write_json(self, name: str, value: Any) -> None:
        partial = self.path(name + f".{os.getpid()}.tmp")
        with open(partial, "w") as file:
            json.dump(value, file, indent=1)
        os.replace(partial, self.path(name))

    def api(self, method: str, path: str, body: Any = None, patch: bool = False) -> Any:
        """One request to the fake apiserver with the cluster token; None without an apiserver."""
        settings = self.config.get("apiserver")
        if not settings:
            return None
        import http.client
        import ssl
        import urllib.parse

        url = urllib.parse.urlsplit(settings["url"])
        context = ssl.create_default_context(cafile=settings["ca"])
        connection = http.client.HTTPSConnection(url.hostname or "", url.port, context=context)
        content_type = "application/merge-patch+json" if patch else "application/json"
        headers = {"Authorization": f"Bearer {settings['token']}", "Content-Type": content_type}
        data = None if body is None else json.dumps(body)
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = json.loads(response.read() or b"null")
        connection.close()
        if response.status >= 400:
            raise RuntimeError(f"apiserver {method} {path}: {response.status} {payload}")
        return payload

    def control(self, path: str, body: Any) -> bool:
        """Tell the testbed what only it can change (the apiserver's own version, a kubelet
        start); False when this fleet has no control endpoint."""
        settings = self.config.get("control")
        if not settings:
            return False
        import http.client
        import urllib.parse

        url = urllib.parse.urlsplit(settings["url"])
        connection = http.client.HTTPConnection(url.hostname or "", url.port)
        headers = {"X-Testbed-Token": settings["token"], "Content-Type": "application/json"}
        connection.request("POST", path, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status < 400


def version_of(package_version: str | None) -> str | None:
    """`1.31.3-1.1` -> `v1.31.3`."""
    return None if not package_version else "v" + package_version.split("-")[0]


def fail(message: str, code: int = 1) -> int:
    print(message, file=__import__("sys").stderr)
    return code
