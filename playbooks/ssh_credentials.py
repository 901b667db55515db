"""How kubegate logs in over SSH: its key, and a (Vault-signed) certificate renewed before it
expires so a job longer than the certificate's TTL keeps logging in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncssh

# A certificate is renewed once less than this share of its lifetime is left (and never
# later than RENEW_MARGIN_S before it ends): a login always presents one that is valid.
RENEW_AT_SHARE_LEFT = 0.25
RENEW_MARGIN_S = 5.0


@dataclass
class Credentials:
    """How kubegate logs in: a private key, optionally with a (Vault-signed) certificate that
    `renew` replaces before it expires, so a job longer than its TTL keeps logging in."""

    private_key: asyncssh.SSHKey
    certificate: asyncssh.SSHCertificate | None = None
    renew: Callable[[], Awaitable[asyncssh.SSHCertificate]] | None = None
    renewals: int = 0
    _renewing: asyncio.Lock = field(default_factory=asyncio.Lock)

    def client_keys(self) -> list[Any]:
        return [(self.private_key, self.certificate) if self.certificate else self.private_key]

    def expiring(self, now: float) -> bool:
        certificate = self.certificate
        if certificate is None or self.renew is None:
            return False
        after, before = validity(certificate)
        left = before - now
        return left < max(RENEW_MARGIN_S, RENEW_AT_SHARE_LEFT * (before - after))

    async def fresh(self, *, force: bool = False) -> None:
        """Renew the certificate if it is expiring (or `force`: the server refused it)."""
        if self.renew is None or self.certificate is None:
            return
        async with self._renewing:
            if force or self.expiring(time.time()):
                self.certificate = await self.renew()
                self.renewals += 1


def validity(certificate: asyncssh.SSHCertificate) -> tuple[float, float]:
    """(valid after, valid before) in epoch seconds. asyncssh keeps an OpenSSH certificate's
    window only in these attributes; without them, treat it as valid for ever (never renew)."""
    after = getattr(certificate, "_valid_after", 0)
    before = getattr(certificate, "_valid_before", 2**64 - 1)
    return float(after), float(before)
