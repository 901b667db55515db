"""The channel hears once when a cluster's newest etcd backup is older than allowed."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bot.audit import AuditLog
from bot.chat import Card
from bot.config import KubegateConfig
from bot.housekeeping import BackupFreshness
from bot.redact import Redactor
from bot.store import Store


class RecordingChat:
    def __init__(self) -> None:
        self.posts: list[tuple[str, Card]] = []

    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str:
        self.posts.append((channel, card))
        return str(len(self.posts))


CONFIG = KubegateConfig.model_validate(
    {"clusters": [{"name": "prod", "channels": ["C0OPS"]}], "backups": {"max_age": "24h"}}
)


def snapshot(directory: Path, *, hours_old: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"etcd-prod-{hours_old}.db.enc"
    path.write_bytes(b"snapshot")
    then = time.time() - hours_old * 3600
    os.utime(path, (then, then))


async def test_a_stale_backup_is_announced_once_and_again_only_after_a_fresh_one_ages(
    tmp_path: Path,
) -> None:
    chat, audit = RecordingChat(), AuditLog(Store(tmp_path / "k.db"), Redactor())
    freshness = BackupFreshness(
        clusters=CONFIG.clusters,
        max_age=CONFIG.backups.max_age,
        backup_dir=tmp_path / "backups",
        audit=audit,
        chat=chat,
    )
    snapshot(tmp_path / "backups" / "prod", hours_old=30)
    await freshness.check()
    await freshness.check()
    assert len(chat.posts) == 1
    channel, card = chat.posts[0]
    assert channel == "C0OPS" and "30.0 h old" in card.headline and "/kube backup etcd" in card.text

    snapshot(tmp_path / "backups" / "prod", hours_old=1)
    await freshness.check()
    assert len(chat.posts) == 1
    for path in (tmp_path / "backups" / "prod").glob("*.db.enc"):
        path.unlink()
    await freshness.check()
    assert "no etcd backup exists yet" in chat.posts[-1][1].headline
    events: list[dict[str, Any]] = list(audit.events(action="alert"))
    assert len(events) == 2
