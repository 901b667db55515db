"""Vault's signing engines, for real: SSH user certificates with ssh-keygen -s, and PKI leaf
certificates from a CA made here with `cryptography`."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TTL = re.compile(r"^(\d+)([smhd]?)$")


class SigningError(Exception):
    pass


def ttl_seconds(text: str | int | None, default: int) -> int:
    if text is None or text == "":
        return default
    match = TTL.match(str(text))
    if match is None:
        raise SigningError(f"invalid ttl {text!r}")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


async def sign_ssh_key(
    ca_key: Path, *, public_key: str, principals: str, ttl: int, identity: str
) -> tuple[str, str]:
    """(serial, signed_key) for an OpenSSH public key line; ssh-keygen does the signing."""
    if not re.match(r"^(ssh-|ecdsa-)\S+ [A-Za-z0-9+/=]+", public_key.strip()):
        raise SigningError("failed to parse public_key as SSH key")
    serial = str(secrets.randbelow(2**63))
    with tempfile.TemporaryDirectory(prefix="vault-sign-") as scratch:
        key_path = Path(scratch) / "key.pub"
        key_path.write_text(public_key.strip() + "\n")
        process = await asyncio.create_subprocess_exec(
            "ssh-keygen",
            "-q",
            "-s",
            str(ca_key),
            "-I",
            identity,
            "-n",
            principals,
            "-V",
            f"-1m:+{ttl}s",
            "-z",
            serial,
            str(key_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            raise SigningError(f"ssh-keygen failed: {err.decode().strip()}")
        signed = (Path(scratch) / "key-cert.pub").read_text().strip()
    return serial, signed


class PkiCa:
    """A root CA that issues leaf certificates the way `pki/issue/<role>` answers."""

    def __init__(self, common_name: str = "kubegate-testbed-vault-pki") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        self._name = name
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str, alt_names: list[str], ttl: int) -> dict[str, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = []
        for name in [common_name, *alt_names]:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        serial = x509.random_serial_number()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(seconds=ttl))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        return {
            "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
            "issuing_ca": self.pem,
            "ca_chain": [self.pem],
            "private_key": key_pem,
            "private_key_type": "ec",
            "serial_number": ":".join(f"{b:02x}" for b in serial.to_bytes(20, "big")),
            "expiration": int((now + datetime.timedelta(seconds=ttl)).timestamp()),
        }
