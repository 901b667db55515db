"""A hanging Vault, as hvac and kubegate's Vault client see it: the stand-in holds every request
but health while it hangs and answers them once it stops; kubegate's client gives up after its
request timeout with a sentence naming what it was doing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from unittest import mock

import hvac
import pytest

from playbooks import vault as vault_client
from playbooks.vault import Vault, VaultError, VaultSettings
from testbed.vault import FakeVault


@pytest.fixture
async def vault() -> AsyncIterator[FakeVault]:
    server = FakeVault()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def client(vault: FakeVault) -> hvac.Client:
    return hvac.Client(url=vault.url, token=vault.root_token, timeout=30)


async def test_a_hanging_vault_holds_requests_until_it_answers_again_but_reports_health(
    vault: FakeVault,
) -> None:
    vault.hang()
    read = asyncio.create_task(asyncio.to_thread(client(vault).auth.token.lookup_self))

    health = await asyncio.to_thread(client(vault).sys.read_health_status, method="GET")
    assert health["sealed"] is False  # answered while the lookup is held
    assert not read.done()

    vault.stop_hanging()
    answer = await read
    assert answer["data"]["id"] == vault.root_token


async def test_kubegate_gives_up_on_a_hanging_vault_with_a_sentence_naming_the_call(
    vault: FakeVault,
) -> None:
    vault.hang()
    settings = VaultSettings(url=vault.url, token=vault.root_token)
    # A short request timeout so the test need not wait kubegate's 10 s.
    with (
        mock.patch.object(vault_client, "REQUEST_TIMEOUT_S", 0.5),
        pytest.raises(VaultError) as refused,
    ):
        await Vault(settings).read("kubegate/audit-key")

    assert "Vault did not answer within 0.5 s while reading kubegate/audit-key" in str(
        refused.value
    )


async def test_a_call_that_outlasts_its_deadline_ends_with_the_same_sentence(
    vault: FakeVault,
) -> None:
    vault.hang()
    settings = VaultSettings(url=vault.url, token=vault.root_token)
    with (
        mock.patch.object(vault_client, "CALL_DEADLINE_S", 0.5),
        pytest.raises(VaultError) as refused,
    ):
        await Vault(settings).sign_ssh_key("ssh-ed25519 AAAA", principals="kubegate")

    assert "Vault did not answer within 0.5 s while signing kubegate's SSH key" in str(
        refused.value
    )
