"""Vault through hvac: login (token, AppRole, Kubernetes), KV v2 with check-and-set, SSH CA
signing. hvac is synchronous, so each call runs in one of Vault's own worker threads, off the
event loop: a hanging Vault holds those threads, never the ones file operations use.

A sealed, hanging or unreachable Vault becomes a VaultError with a sentence for the thread.
Every HTTP request has REQUEST_TIMEOUT_S for connecting and for each read, and every call
(login included) CALL_DEADLINE_S in all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import hvac
import hvac.exceptions
import requests

from playbooks.errors import OperationError

T = TypeVar("T")
REQUEST_TIMEOUT_S = 10
CALL_DEADLINE_S = 30.0  # a Vault that trickles its answer still ends here
VAULT_THREADS = 4


class VaultError(OperationError):
    """Vault is sealed, unreachable or refused; the message says which and what to do."""


@dataclass(frozen=True)
class VaultSettings:
    url: str
    auth: Literal["token", "approle", "kubernetes"] = "token"
    token: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    kubernetes_role: str | None = None
    kubernetes_jwt_path: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    kv_mount: str = "secret"
    ssh_mount: str = "ssh-client-signer"
    ssh_role: str = "kubegate"
    ca_cert: str | None = None


class Vault:
    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._client = hvac.Client(
            url=settings.url,
            token=settings.token,
            verify=settings.ca_cert or True,
            timeout=REQUEST_TIMEOUT_S,
        )
        self._logged_in = settings.auth == "token"
        self._threads = ThreadPoolExecutor(VAULT_THREADS, thread_name_prefix="vault")

    async def _call(self, doing: str, action: Callable[[], T]) -> T:
        try:
            async with asyncio.timeout(CALL_DEADLINE_S):
                if not self._logged_in:
                    await self._in_thread(self._login)
                    self._logged_in = True
                return await self._in_thread(action)
        except (TimeoutError, requests.Timeout) as error:
            waited = REQUEST_TIMEOUT_S if isinstance(error, requests.Timeout) else CALL_DEADLINE_S
            raise VaultError(
                f"Vault did not answer within {waited:g} s while {doing} (it may be hanging "
                "on its storage); check Vault, then retry the step"
            ) from error
        except hvac.exceptions.VaultDown as error:
            raise VaultError(
                f"Vault is sealed or down while {doing}; unseal it and retry the step"
            ) from error
        except hvac.exceptions.Forbidden as error:
            raise VaultError(
                f"Vault refused kubegate's token while {doing} (permission denied)"
            ) from error
        except hvac.exceptions.InvalidRequest as error:
            raise VaultError(
                f"Vault rejected the request while {doing}: {_first_error(error)}"
            ) from error
        except hvac.exceptions.VaultError as error:
            raise VaultError(f"Vault failed while {doing}: {_first_error(error)}") from error
        except requests.RequestException as error:
            raise VaultError(f"cannot reach Vault at {self.settings.url} while {doing}") from error

    async def _in_thread(self, action: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, action)

    def _login(self) -> None:
        s = self.settings
        if s.auth == "approle":
            self._client.auth.approle.login(role_id=s.role_id, secret_id=s.secret_id)
        elif s.auth == "kubernetes":
            with open(s.kubernetes_jwt_path) as jwt:
                self._client.auth.kubernetes.login(role=s.kubernetes_role, jwt=jwt.read().strip())

    async def token_lookup(self) -> dict[str, Any]:
        answer = await self._call(
            "looking up kubegate's token", self._client.auth.token.lookup_self
        )
        return dict(answer.get("data") or {})

    async def read(self, path: str, *, version: int | None = None) -> tuple[dict[str, Any], int]:
        """A KV v2 secret's data and version: the current one, or the `version` asked for."""
        doing = f"reading {path}" if version is None else f"reading {path} v{version}"
        answer = await self._call(
            doing,
            lambda: self._client.secrets.kv.v2.read_secret_version(
                path=path,
                version=version,
                mount_point=self.settings.kv_mount,
                raise_on_deleted_version=True,
            ),
        )
        data = answer["data"]
        return dict(data["data"]), int(data["metadata"]["version"])

    async def version(self, path: str) -> int:
        """The current version of a KV v2 secret; 0 when there is none yet (what `cas` wants)."""
        try:
            _, version = await self.read(path)
        except VaultError as error:
            if isinstance(error.__cause__, hvac.exceptions.InvalidPath):
                return 0
            raise
        return version

    async def write(self, path: str, secret: dict[str, Any], *, cas: int | None) -> int:
        """Write a KV v2 secret; `cas` is the version we read (0: must not exist yet)."""
        answer = await self._call(
            f"writing {path}",
            lambda: self._client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=secret, cas=cas, mount_point=self.settings.kv_mount
            ),
        )
        return int(answer["data"]["version"])

    async def sign_ssh_key(self, public_key: str, *, principals: str, ttl: str = "10m") -> str:
        """A short-lived OpenSSH user certificate for `public_key` from Vault's SSH CA."""
        path = f"{self.settings.ssh_mount}/sign/{self.settings.ssh_role}"
        answer = await self._call(
            "signing kubegate's SSH key",
            lambda: self._client.write_data(
                path, data={"public_key": public_key, "valid_principals": principals, "ttl": ttl}
            ),
        )
        return str(answer["data"]["signed_key"])


def _first_error(error: hvac.exceptions.VaultError) -> str:
    errors = getattr(error, "errors", None)
    if isinstance(errors, list) and errors:
        return str(errors[0])
    return str(error).split(", on ")[0]
