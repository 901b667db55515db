"""Opening the store with its audit key and anchoring, for `serve`/`console` (which write) and
for `audit verify|export` (which only read, and never make a key).

The key comes from Vault KV when the config has Vault, else from a 0600 key file (beside the
database unless `audit.key_file` says where). It is registered with the redactor at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bot.anchors import (
    AnchorFile,
    Anchoring,
    AnchorSink,
    HttpSink,
    SyslogSink,
    anchor_file_next_to,
)
from bot.audit_keys import (
    AuditKeyError,
    fallback_key_file_next_to,
    key_file_next_to,
    key_from_file,
    key_from_vault,
    key_in_vault,
    read_key_file,
)
from bot.chain import FALLBACK, KEYED
from bot.config import KubegateConfig, Settings, load_config
from bot.redact import Redactor
from bot.store import Store
from playbooks.vault import VaultSettings

log = logging.getLogger("kubegate.audit")


@dataclass(frozen=True)
class AuditPlaces:
    key_file: Path | None  # None: the key is in Vault
    vault_key_path: str | None
    anchor_file: Path


def audit_places(settings: Settings, config: KubegateConfig | None) -> AuditPlaces:
    audit = config.audit if config is not None else None
    anchor_file = (audit.anchor_file if audit else None) or anchor_file_next_to(settings.db)
    if _vault_for(settings, config) is not None:
        assert audit is not None
        return AuditPlaces(None, audit.vault_key_path, anchor_file)
    key_file = (audit.key_file if audit else None) or key_file_next_to(settings.db)
    return AuditPlaces(key_file, None, anchor_file)


def _vault_for(settings: Settings, config: KubegateConfig | None) -> VaultSettings | None:
    if config is None:
        return None
    from bot.config import vault_settings

    return vault_settings(settings, config)


# A Vault-held key fetched on the service's event loop before the synchronous `build` opens the
# store: blocking the loop for it would also block a Vault served on that loop (the testbed's).
_fetched_keys: dict[Path, bytes | AuditKeyError] = {}


async def prefetch_audit_key(settings: Settings) -> None:
    from bot.config import config_path

    config = load_config(config_path(settings))
    vault = _vault_for(settings, config)
    if vault is None:
        return
    try:
        key = await key_in_vault(vault, config.audit.vault_key_path, create=True)
    except AuditKeyError as error:
        _fetched_keys[settings.db.resolve()] = error
        return
    assert key is not None
    _fetched_keys[settings.db.resolve()] = key


def audit_key(settings: Settings, config: KubegateConfig | None, *, create: bool) -> bytes | None:
    places = audit_places(settings, config)
    if places.key_file is not None:
        return key_from_file(places.key_file, create=create)
    vault = _vault_for(settings, config)
    assert vault is not None and places.vault_key_path is not None
    fetched = _fetched_keys.pop(settings.db.resolve(), None)
    if isinstance(fetched, AuditKeyError):
        raise fetched
    return fetched or key_from_vault(vault, places.vault_key_path, create=create)


def _keys_for_writing(
    settings: Settings, config: KubegateConfig
) -> tuple[dict[str, bytes], str, str | None]:
    """The keys by scheme, the scheme to write with, and why Vault's key could not be had."""
    fallback_file = fallback_key_file_next_to(settings.db)
    try:
        key = audit_key(settings, config, create=True)
    except AuditKeyError as error:
        # Keep serving (a sealed Vault must not stop a cordon in an incident), but say it: in
        # the log now, and in the chain, where `audit verify` counts what this key signed.
        log.warning(
            "%s; until a restart with Vault reachable, the audit chain is keyed with the "
            "fallback key file %s",
            error,
            fallback_file,
        )
        fallback = key_from_file(fallback_file, create=True)
        assert fallback is not None
        return {FALLBACK: fallback}, FALLBACK, str(error)
    assert key is not None
    keys = {KEYED: key}
    earlier_fallback = read_key_file(fallback_file)  # votes cast during an earlier fallback
    if earlier_fallback is not None:
        keys[FALLBACK] = earlier_fallback
    return keys, KEYED, None


def open_audited_store(settings: Settings, config: KubegateConfig, *, redactor: Redactor) -> Store:
    """The store kubegate runs on: keyed chain, anchored now, at job ends and periodically."""
    keys, scheme, vault_problem = _keys_for_writing(settings, config)
    redactor.register(*(key.hex() for key in keys.values()))
    store = Store(settings.db, chain_keys=keys, writes_with=scheme)
    if vault_problem is not None:
        with store.transaction() as conn:
            store.append_event(
                conn,
                action="audit.key-fallback",
                actor="system",
                details={"reason": vault_problem, "scheme": scheme},
            )
    places = audit_places(settings, config)
    anchoring = Anchoring(
        lambda: _head(store), _sinks(config, places.anchor_file), every=config.audit.anchor_every
    )
    store.after_job_end.append(anchoring.job_ended)
    store.after_event.append(anchoring.event_recorded)
    store.before_close.append(anchoring.stop)
    anchoring.start()
    return store


def _head(store: Store) -> tuple[int, str, int | None] | None:
    head = store.chain_head()
    return (head.seq, head.hash, head.keyed_from) if head else None


def _sinks(config: KubegateConfig, anchor_file: Path) -> list[AnchorSink]:
    sinks: list[AnchorSink] = [AnchorFile(anchor_file)]
    if config.audit.anchor_syslog:
        sinks.append(SyslogSink(config.audit.anchor_syslog))
    if config.audit.anchor_url:
        sinks.append(HttpSink(config.audit.anchor_url))
    if len(sinks) == 1:
        log.warning(
            "audit anchors go only to %s; set audit.anchor_syslog or audit.anchor_url so a "
            "copy lives off this host (a SIEM)",
            anchor_file,
        )
    return sinks


def reading_store(settings: Settings, config: KubegateConfig | None) -> Store:
    """The store for `audit verify|export`: the keys that can be had, nothing made or written."""
    keys = {}
    key = audit_key(settings, config, create=False)
    if key is not None:
        keys[KEYED] = key
    fallback = read_key_file(fallback_key_file_next_to(settings.db))
    if fallback is not None:
        keys[FALLBACK] = fallback
    return Store(settings.db, chain_keys=keys, read_only=True)
