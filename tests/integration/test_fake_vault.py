"""The Vault stand-in as hvac sees it: tokens, KV v2 with check-and-set, SSH CA signing, AppRole,
and the sealed mode."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from hvac import exceptions as hvac_errors

from testbed.fleet.keys import fingerprint
from testbed.vault import FakeVault


@pytest.fixture
async def vault() -> AsyncIterator[FakeVault]:
    server = FakeVault()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def client(vault: FakeVault, token: str | None = None) -> hvac.Client:
    return hvac.Client(url=vault.url, token=token if token is not None else vault.root_token)


async def test_root_token_is_authenticated_and_a_wrong_one_is_not(vault: FakeVault) -> None:
    assert await asyncio.to_thread(client(vault).is_authenticated)
    assert not await asyncio.to_thread(client(vault, "hvs.wrong").is_authenticated)


async def test_kv_v2_keeps_versions_and_refuses_a_stale_check_and_set(vault: FakeVault) -> None:
    kv = client(vault).secrets.kv.v2

    def story() -> tuple[Any, Any, Any]:
        first = kv.create_or_update_secret("certs/cp-1", secret={"pem": "one"}, cas=0)
        kv.create_or_update_secret("certs/cp-1", secret={"pem": "two"}, cas=1)
        with pytest.raises(hvac_errors.InvalidRequest, match="check-and-set"):
            kv.create_or_update_secret("certs/cp-1", secret={"pem": "late"}, cas=1)
        return (
            first,
            kv.read_secret_version("certs/cp-1", raise_on_deleted_version=True),
            (kv.read_secret_version("certs/cp-1", version=1, raise_on_deleted_version=True)),
        )

    first, latest, old = await asyncio.to_thread(story)
    assert first["data"]["version"] == 1
    assert latest["data"]["data"] == {"pem": "two"}
    assert latest["data"]["metadata"]["version"] == 2
    assert old["data"]["data"] == {"pem": "one"}
    metadata = await asyncio.to_thread(kv.read_secret_metadata, "certs/cp-1")
    assert metadata["data"]["current_version"] == 2


async def test_reading_a_missing_secret_is_invalid_path(vault: FakeVault) -> None:
    kv = client(vault).secrets.kv.v2
    with pytest.raises(hvac_errors.InvalidPath):
        await asyncio.to_thread(kv.read_secret_version, "nope", raise_on_deleted_version=True)


async def test_ssh_ca_signs_a_real_openssh_certificate(vault: FakeVault, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (tmp_path / "id_ed25519.pub").read_text()
    response = await asyncio.to_thread(
        client(vault).write,
        "ssh-client-signer/sign/kubegate",
        public_key=public,
        valid_principals="kubegate-fleet",
        ttl="5m",
    )
    certificate = tmp_path / "id_ed25519-cert.pub"
    certificate.write_text(response["data"]["signed_key"])
    shown = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(certificate)], capture_output=True, text=True, check=True
    ).stdout
    assert "user certificate" in shown
    assert "kubegate-fleet" in shown
    assert f"Signing CA: ED25519 {fingerprint(vault.ssh_ca_public_key)}" in shown


async def test_approle_login_gives_a_working_token(vault: FakeVault) -> None:
    anonymous = hvac.Client(url=vault.url)
    login = await asyncio.to_thread(
        anonymous.auth.approle.login,
        role_id=vault.approle_role_id,
        secret_id=vault.approle_secret_id,
    )
    token = login["auth"]["client_token"]
    assert await asyncio.to_thread(client(vault, token).is_authenticated)
    with pytest.raises(hvac_errors.InvalidRequest):
        await asyncio.to_thread(
            anonymous.auth.approle.login, role_id=vault.approle_role_id, secret_id="wrong"
        )


async def test_pki_issue_returns_a_certificate_for_the_name(vault: FakeVault) -> None:
    issued = await asyncio.to_thread(
        client(vault).write, "pki/issue/kubegate", common_name="kubegate.test", ttl="1h"
    )
    assert issued["data"]["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in issued["data"]["private_key"]


async def test_sealed_vault_answers_503_except_health(vault: FakeVault) -> None:
    vault.sealed = True
    kv = client(vault).secrets.kv.v2
    with pytest.raises(hvac_errors.VaultDown, match="Vault is sealed"):
        await asyncio.to_thread(kv.read_secret_version, "x", raise_on_deleted_version=True)
    status = await asyncio.to_thread(client(vault).sys.read_seal_status)
    assert status["sealed"] is True
    assert await asyncio.to_thread(client(vault).sys.is_sealed)
    vault.sealed = False
    assert await asyncio.to_thread(client(vault).is_authenticated)
