"""KV version 2 as Vault keeps it: numbered versions per path, check-and-set, metadata. Pure:
no HTTP here; the server turns `KvError` into Vault's 400/404 answers."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any


class KvError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Version:
    data: dict[str, Any]
    created_time: str
    deletion_time: str = ""

    def metadata(self, number: int) -> dict[str, Any]:
        return {
            "created_time": self.created_time,
            "custom_metadata": None,
            "deletion_time": self.deletion_time,
            "destroyed": False,
            "version": number,
        }


@dataclass
class Secret:
    versions: list[Version] = field(default_factory=list)
    created_time: str = field(default_factory=_now)
    cas_required: bool = False


class KvStore:
    def __init__(self) -> None:
        self._secrets: dict[str, Secret] = {}

    def write(self, path: str, data: dict[str, Any], cas: int | None) -> dict[str, Any]:
        secret = self._secrets.get(path)
        current = len(secret.versions) if secret else 0
        if cas is None and secret is not None and secret.cas_required:
            raise KvError(400, "check-and-set parameter required for this call")
        if cas is not None and cas != current:
            raise KvError(400, "check-and-set parameter did not match the current version")
        if secret is None:
            secret = self._secrets[path] = Secret()
        secret.versions.append(Version(dict(data), _now()))
        return secret.versions[-1].metadata(len(secret.versions))

    def read(self, path: str, version: int | None) -> dict[str, Any]:
        secret = self._secrets.get(path)
        if secret is None or not secret.versions:
            raise KvError(404, "")
        number = version or len(secret.versions)
        if not 1 <= number <= len(secret.versions):
            raise KvError(404, "")
        entry = secret.versions[number - 1]
        data = None if entry.deletion_time else entry.data
        return {"data": data, "metadata": entry.metadata(number)}

    def delete_latest(self, path: str) -> None:
        secret = self._secrets.get(path)
        if secret is not None and secret.versions:
            secret.versions[-1].deletion_time = _now()

    def metadata(self, path: str) -> dict[str, Any]:
        secret = self._secrets.get(path)
        if secret is None:
            raise KvError(404, "")
        versions = {str(n): v.metadata(n) for n, v in enumerate(secret.versions, start=1)}
        return {
            "cas_required": secret.cas_required,
            "created_time": secret.created_time,
            "current_version": len(secret.versions),
            "custom_metadata": None,
            "delete_version_after": "0s",
            "max_versions": 0,
            "oldest_version": 1,
            "updated_time": secret.versions[-1].created_time,
            "versions": versions,
        }

    def list(self, prefix: str) -> list[str]:
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        keys = {
            path[len(prefix) :].split("/", 1)[0] + ("/" if "/" in path[len(prefix) :] else "")
            for path in self._secrets
            if path.startswith(prefix)
        }
        if not keys:
            raise KvError(404, "")
        return sorted(keys)
