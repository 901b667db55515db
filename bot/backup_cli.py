"""`kubegate backup decrypt FILE --out PATH`: a sealed etcd backup back to the plain snapshot,
with the key from Vault as kubegate's config reaches it. For the operator's restore by hand."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.config import Settings, config_path, load_config, vault_settings
from playbooks.backup_crypto import BackupCryptoError, decrypt_file, opening_key, read_header
from playbooks.errors import OperationError
from playbooks.vault import Vault


def decrypt_backup(settings: Settings, sealed: Path, out: Path) -> int:
    if out.exists():
        print(f"kubegate: {out} exists; name a new file with --out", file=sys.stderr)
        return 2
    try:
        header = read_header(sealed)
    except (OSError, BackupCryptoError, ValueError) as error:
        print(f"kubegate: cannot read {sealed}: {error}", file=sys.stderr)
        return 2
    found = vault_settings(settings, load_config(config_path(settings)))
    if found is None:
        print("kubegate: no Vault in the config: the backup key lives there", file=sys.stderr)
        return 2
    try:
        # The version the backup names, which a rotation since then leaves readable.
        key = asyncio.run(opening_key(Vault(found), header))
        decrypt_file(sealed, out, key)
    except OperationError as error:
        print(f"kubegate: {error}", file=sys.stderr)
        return 1
    print(f"{out}: the etcd snapshot (Vault {header['key']} v{header['key_version']})")
    return 0
