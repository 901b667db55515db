"""The audit key in Vault KV when the config has Vault: made once with check-and-set, never in
a file beside the database, and what `kubegate audit verify` uses when given the config."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import hvac
import pytest
import yaml

from bot.audit import AuditLog
from bot.audit_keys import fallback_key_file_next_to, key_file_next_to
from bot.audit_setup import open_audited_store, prefetch_audit_key
from bot.config import Settings, load_config
from bot.redact import Redactor
from testbed.vault import FakeVault


@pytest.fixture
async def vault() -> AsyncIterator[FakeVault]:
    server = FakeVault()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def settings_with_vault(tmp_path: Path, vault: FakeVault) -> Settings:
    config = {
        "clusters": [{"name": "prod", "channels": ["C0OPS"]}],
        "vault": {"url": vault.url, "token": vault.root_token},
    }
    (tmp_path / "kubegate.yaml").write_text(yaml.safe_dump(config))
    return Settings.model_validate(
        {"KUBEGATE_CONFIG": str(tmp_path / "kubegate.yaml"), "KUBEGATE_DB": str(tmp_path / "k.db")}
    )


async def kubegate(settings: Settings, *args: str) -> tuple[int, str]:
    """The CLI as its own process, while this loop keeps serving the fake Vault."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "kubegate"),
        *args,
        env={
            "KUBEGATE_DB": str(settings.db),
            "KUBEGATE_CONFIG": str(settings.config_path),
            "PATH": "/usr/bin:/bin",
        },
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_the_audit_key_is_made_in_vault_and_verify_uses_it(
    tmp_path: Path, vault: FakeVault
) -> None:
    settings = settings_with_vault(tmp_path, vault)
    config = load_config(tmp_path / "kubegate.yaml")
    for run in range(2):  # a restart finds the same key: the chain stays verifiable
        await prefetch_audit_key(settings)
        store = open_audited_store(settings, config, redactor=Redactor())
        AuditLog(store, Redactor()).record("config.loaded", actor="system", run=run)
        store.close()
    secret = await asyncio.to_thread(
        hvac.Client(url=vault.url, token=vault.root_token).secrets.kv.v2.read_secret_version,
        path="kubegate/audit-chain-key",
        raise_on_deleted_version=True,
    )
    assert secret["data"]["metadata"]["version"] == 1 and len(secret["data"]["data"]["key"]) == 64
    assert not key_file_next_to(settings.db).exists()
    code, out = await kubegate(settings, "audit", "verify")
    assert code == 0 and "2 event(s) verified" in out and "NOT recomputed" not in out


async def test_a_sealed_vault_at_start_up_keys_the_chain_with_a_fallback_file_and_says_so(
    tmp_path: Path, vault: FakeVault
) -> None:
    settings = settings_with_vault(tmp_path, vault)
    config = load_config(tmp_path / "kubegate.yaml")
    vault.sealed = True
    await prefetch_audit_key(settings)
    store = open_audited_store(settings, config, redactor=Redactor())
    AuditLog(store, Redactor()).record("config.loaded", actor="system")
    store.close()
    assert fallback_key_file_next_to(settings.db).stat().st_mode & 0o777 == 0o600
    vault.sealed = False
    await prefetch_audit_key(settings)  # the next start finds Vault again
    store = open_audited_store(settings, config, redactor=Redactor())
    log = AuditLog(store, Redactor())
    log.record("config.loaded", actor="system")
    actions = [(e["action"], e["scheme"]) for e in log.events()]
    store.close()
    assert actions == [
        ("audit.key-fallback", "hmac-sha256-fallback"),
        ("config.loaded", "hmac-sha256-fallback"),
        ("config.loaded", "hmac-sha256"),
    ]
    code, out = await kubegate(settings, "audit", "verify")
    assert code == 0 and "3 event(s) verified" in out, out
    assert "2 event(s) are keyed with the fallback key file" in out
