"""SSH key material made with the real ssh-keygen: host keys, the client pair, the user CA, and
the fingerprints and known_hosts lines that pin them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path


class KeygenError(RuntimeError):
    pass


async def _keygen(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "ssh-keygen",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise KeygenError(f"ssh-keygen {' '.join(args)} failed: {err.decode().strip()}")
    return out.decode()


async def generate_ed25519(path: Path, comment: str) -> Path:
    """A new unencrypted ed25519 key at `path` (and `path`.pub); returns the private key path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".pub").unlink(missing_ok=True)
    await _keygen("-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))
    return path


async def sign_user_key(
    *, ca_key: Path, public_key: Path, identity: str, principals: list[str], validity: str
) -> Path:
    """An OpenSSH user certificate for `public_key`; ssh-keygen writes it beside, as -cert.pub."""
    signing = ["-q", "-s", str(ca_key), "-I", identity]
    await _keygen(*signing, "-n", ",".join(principals), "-V", validity, str(public_key))
    return public_key.with_name(public_key.name.removesuffix(".pub") + "-cert.pub")


def fingerprint(public_key_line: str) -> str:
    """`SHA256:…` exactly as `ssh-keygen -l` prints it for an OpenSSH public key line."""
    blob = base64.b64decode(public_key_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def known_hosts_line(address: str, port: int, public_key_line: str) -> str:
    key_type, key_data = public_key_line.split()[:2]
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {key_type} {key_data}"
