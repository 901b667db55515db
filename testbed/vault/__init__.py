"""A Vault stand-in good enough for hvac: tokens, KV v2 with check-and-set, SSH CA signing with
real OpenSSH certificates, PKI issue, AppRole/Kubernetes login, and a sealed mode."""

from testbed.vault.server import FakeVault

__all__ = ["FakeVault"]
