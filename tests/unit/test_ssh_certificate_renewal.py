"""A Vault-signed SSH certificate is replaced before it runs out, not after a login fails."""

from __future__ import annotations

import time

import asyncssh

from playbooks.ssh import Credentials

CA = asyncssh.generate_private_key("ssh-ed25519")
KEY = asyncssh.generate_private_key("ssh-ed25519")


def certificate(lasting: float, *, started: float = 0.0) -> asyncssh.SSHCertificate:
    now = time.time()
    return CA.generate_user_certificate(
        KEY, "kubegate", valid_after=int(now - started), valid_before=int(now - started + lasting)
    )


async def test_a_certificate_with_a_quarter_of_its_life_left_is_renewed_before_the_next_login() -> (
    None
):
    async def renew() -> asyncssh.SSHCertificate:
        return certificate(30)

    credentials = Credentials(KEY, certificate(30, started=25), renew=renew)
    assert credentials.expiring(time.time())
    await credentials.fresh()
    assert credentials.renewals == 1 and not credentials.expiring(time.time())
    await credentials.fresh()
    assert credentials.renewals == 1, "a fresh certificate is kept"


async def test_a_plain_key_is_never_renewed() -> None:
    credentials = Credentials(KEY)
    await credentials.fresh(force=True)
    assert credentials.renewals == 0 and credentials.certificate is None
