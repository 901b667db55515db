"""`FakeVault`: the HTTP edge hvac talks to: tokens, sealed mode, hanging mode, KV v2 under
`secret/`, SSH CA signing, PKI issue, AppRole and Kubernetes logins. Runs inside the caller's
event loop."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from testbed.vault.kv import KvError, KvStore
from testbed.vault.signing import PkiCa, SigningError, sign_ssh_key, ttl_seconds

Handler = Callable[[web.Request, str, dict[str, Any]], Awaitable[web.Response]]
KV_MOUNT = "secret"
SSH_MOUNT = "ssh-client-signer"


def errors(status: int, *messages: str) -> web.Response:
    return web.json_response({"errors": list(messages)}, status=status)


def answer(data: Any, **extra: Any) -> web.Response:
    return web.json_response({"request_id": secrets.token_hex(8), "data": data, **extra})


class FakeVault:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        root_token: str | None = None,
        ssh_ca_key: Path | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.root_token = root_token or "hvs." + secrets.token_urlsafe(24)
        self.ssh_ca_key = ssh_ca_key
        self.sealed = False
        self._answering = asyncio.Event()  # cleared while Vault hangs
        self._answering.set()
        self.kv = KvStore()
        self.pki: PkiCa | None = None
        self.tokens: dict[str, dict[str, Any]] = {}
        self.approle_role_id = secrets.token_hex(16)
        self.approle_secret_id = secrets.token_hex(16)
        self.kubernetes_jwts: dict[str, str] = {}  # service-account JWT -> Vault role
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self.tokens[self.root_token] = {"policies": ["root"], "display_name": "root", "ttl": 0}
        if self.ssh_ca_key is None:  # no CA handed to us: make our own
            self._scratch = tempfile.TemporaryDirectory(prefix="fake-vault-")
            self.ssh_ca_key = Path(self._scratch.name) / "ssh_ca"
            process = await asyncio.create_subprocess_exec(
                "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.ssh_ca_key)
            )
            await process.wait()
        self.pki = await asyncio.to_thread(PkiCa)
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self.stop_hanging()  # held requests are answered, not left to the shutdown timeout
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    @property
    def hanging(self) -> bool:
        return not self._answering.is_set()

    def hang(self) -> None:
        """Accept requests and answer none, as a Vault whose storage backend stopped answering
        (Raft without quorum, an unreachable Consul) does: it holds each request until storage
        answers or its `default_max_request_duration` (90 s by default,
        https://developer.hashicorp.com/vault/docs/configuration#default_max_request_duration)
        passes; that 90 s is longer than any client here waits, so requests are held until
        `stop_hanging`. Health and seal status are answered from memory, as Vault's are."""
        self._answering.clear()

    def stop_hanging(self) -> None:
        """Storage is back: the held requests are answered, in the order they came."""
        self._answering.set()

    @property
    def ssh_ca_public_key(self) -> str:
        assert self.ssh_ca_key is not None
        return self.ssh_ca_key.with_name(self.ssh_ca_key.name + ".pub").read_text().strip()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v1/{path:.*}", self._serve)
        return app

    async def _serve(self, request: web.Request) -> web.Response:
        path = request.match_info["path"].strip("/")
        if path == "sys/health":
            return self._health()
        if path == "sys/seal-status":
            return web.json_response(self._seal_status())
        await self._answering.wait()
        if self.sealed:
            return errors(503, "Vault is sealed")
        body: dict[str, Any] = {}
        if request.can_read_body:
            parsed = await request.json()
            body = parsed if isinstance(parsed, dict) else {}
        if path in ("auth/approle/login", "auth/kubernetes/login"):
            return self._login(path, body)
        token = request.headers.get("X-Vault-Token", "")
        if token not in self.tokens:
            return errors(403, "permission denied")
        try:
            return await self._route(request, path, body, token)
        except KvError as error:
            return errors(error.status, *([error.message] if error.message else []))
        except SigningError as error:
            return errors(400, str(error))

    async def _route(
        self, request: web.Request, path: str, body: dict[str, Any], token: str
    ) -> web.Response:
        method = request.method
        if path == "auth/token/lookup-self":
            return answer({"id": token, **self.tokens[token], "renewable": False})
        if path.startswith(f"{KV_MOUNT}/data/"):
            return self._kv_data(method, path.removeprefix(f"{KV_MOUNT}/data/"), request, body)
        if path.startswith(f"{KV_MOUNT}/metadata"):
            key = path.removeprefix(f"{KV_MOUNT}/metadata").strip("/")
            if method == "LIST" or request.query.get("list") == "true":
                return answer({"keys": self.kv.list(key)})
            return answer(self.kv.metadata(key))
        if path.startswith(f"{SSH_MOUNT}/sign/") and method in ("POST", "PUT"):
            return await self._ssh_sign(path.rsplit("/", 1)[1], body, token)
        if path.startswith("pki/issue/") and method in ("POST", "PUT"):
            return self._pki_issue(body)
        if path == "pki/ca/pem":
            assert self.pki is not None
            return web.Response(text=self.pki.pem)
        return errors(404, f"no handler for route {path!r}")

    def _kv_data(
        self, method: str, key: str, request: web.Request, body: dict[str, Any]
    ) -> web.Response:
        if method in ("POST", "PUT"):
            cas = (body.get("options") or {}).get("cas")
            return answer(
                self.kv.write(key, body.get("data") or {}, None if cas is None else int(cas))
            )
        if method == "DELETE":
            self.kv.delete_latest(key)
            return web.Response(status=204)
        version = int(request.query.get("version", "0") or 0) or None
        return answer(self.kv.read(key, version))

    async def _ssh_sign(self, role: str, body: dict[str, Any], token: str) -> web.Response:
        assert self.ssh_ca_key is not None
        ttl = ttl_seconds(body.get("ttl"), default=1800)
        principals = str(body.get("valid_principals") or "")
        if not principals:
            raise SigningError("empty valid principals not allowed by role")
        identity = f"vault-{self.tokens[token].get('display_name', 'token')}-{role}"
        serial, signed = await sign_ssh_key(
            self.ssh_ca_key,
            public_key=str(body.get("public_key", "")),
            principals=principals,
            ttl=ttl,
            identity=identity,
        )
        return answer({"serial_number": serial, "signed_key": signed + "\n"})

    def _pki_issue(self, body: dict[str, Any]) -> web.Response:
        assert self.pki is not None
        common_name = str(body.get("common_name") or "")
        if not common_name:
            raise SigningError("the common_name field is required")
        names = [n for n in str(body.get("alt_names", "")).split(",") if n]
        names += [n for n in str(body.get("ip_sans", "")).split(",") if n]
        return answer(self.pki.issue(common_name, names, ttl_seconds(body.get("ttl"), 86400)))

    def _login(self, path: str, body: dict[str, Any]) -> web.Response:
        if path == "auth/approle/login":
            valid = (body.get("role_id"), body.get("secret_id")) == (
                self.approle_role_id,
                self.approle_secret_id,
            )
            name, method = "approle", "approle"
        else:
            role = self.kubernetes_jwts.get(str(body.get("jwt", "")))
            valid = role is not None and role == body.get("role")
            name, method = f"kubernetes-{body.get('role')}", "kubernetes"
        if not valid:
            return errors(
                400, "invalid role or secret ID" if method == "approle" else "permission denied"
            )
        token = "hvs." + secrets.token_urlsafe(24)
        self.tokens[token] = {
            "policies": ["default", "kubegate"],
            "display_name": name,
            "ttl": 3600,
        }
        auth = {
            "client_token": token,
            "accessor": secrets.token_urlsafe(16),
            "policies": ["default", "kubegate"],
            "token_policies": ["default", "kubegate"],
            "lease_duration": 3600,
            "renewable": True,
            "metadata": {"role_name": name},
        }
        return web.json_response({"request_id": secrets.token_hex(8), "data": None, "auth": auth})

    def _seal_status(self) -> dict[str, Any]:
        return {
            "type": "shamir",
            "initialized": True,
            "sealed": self.sealed,
            "t": 1,
            "n": 1,
            "progress": 0,
            "version": "1.15.6",
            "cluster_name": "kubegate-testbed",
        }

    def _health(self) -> web.Response:
        body = {
            "initialized": True,
            "sealed": self.sealed,
            "standby": False,
            "version": "1.15.6",
            "cluster_name": "kubegate-testbed",
        }
        return web.json_response(body, status=503 if self.sealed else 200)
