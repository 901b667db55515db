"""The channel hears once per threshold (30, 14, 7 days) as a control-plane certificate nears
its expiry, and again only after a rotation moved it away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.audit import AuditLog
from bot.config import KubegateConfig
from bot.housekeeping import CertExpiry
from bot.redact import Redactor
from bot.store import Store
from playbooks.cert_checks import NodeExpiry, kubelet_table
from playbooks.certs_table import CertificateRow, ExpiryTable
from tests.unit.test_backup_freshness import RecordingChat

CONFIG = KubegateConfig.model_validate(
    {"clusters": [{"name": "prod", "channels": ["C0OPS"]}], "certs": {"warn_days": [30, 14, 7]}}
)


async def no_control_planes(cluster: str) -> list[NodeExpiry]:
    return []


def watching(tmp_path: Path) -> tuple[CertExpiry, RecordingChat, AuditLog]:
    chat, audit = RecordingChat(), AuditLog(Store(tmp_path / "k.db"), Redactor())
    certs = CertExpiry(
        clusters=CONFIG.clusters,
        warn_days=CONFIG.certs.warn_days,
        read_expiries=no_control_planes,
        audit=audit,
        chat=chat,
    )
    return certs, chat, audit


def expiring_in(days: float) -> list[NodeExpiry]:
    row = CertificateRow(
        name="apiserver",
        expires=datetime.now(UTC) + timedelta(days=days),
        residual=f"{int(days)}d",
        authority="ca",
        externally_managed=False,
    )
    return [NodeExpiry("cp-1", ExpiryTable(certificates=(row,), authorities=()))]


async def test_each_threshold_is_announced_once_with_the_rotate_hint(tmp_path: Path) -> None:
    certs, chat, audit = watching(tmp_path)
    for days in (45, 29.5, 28, 20, 13.5, 10, 6.5, 3):
        await certs.consider("prod", "C0OPS", expiring_in(days))
    headlines = [card.headline for _, card in chat.posts]
    assert len(headlines) == 3
    assert "warning at 30 days" in headlines[0] and "warning at 14 days" in headlines[1]
    assert "certificate apiserver on cp-1 expires in 6d" in headlines[2]
    assert all("/kube rotate certs" in card.text for _, card in chat.posts)
    events: list[dict[str, Any]] = list(audit.events(action="alert"))
    assert [e["details"]["threshold_days"] for e in events] == [30, 14, 7]


async def test_after_a_rotation_the_count_starts_again(tmp_path: Path) -> None:
    certs, chat, _ = watching(tmp_path)
    await certs.consider("prod", "C0OPS", expiring_in(5))
    await certs.consider("prod", "C0OPS", expiring_in(364))
    await certs.consider("prod", "C0OPS", expiring_in(29))
    assert len(chat.posts) == 2
    assert "warning at 7 days" in chat.posts[0][1].headline
    assert "warning at 30 days" in chat.posts[1][1].headline


async def test_a_workers_kubelet_certificate_is_announced_with_what_renews_it(
    tmp_path: Path,
) -> None:
    certs, chat, _ = watching(tmp_path)
    kubelet = NodeExpiry("worker-2", kubelet_table(datetime.now(UTC) + timedelta(days=5, hours=1)))
    await certs.consider("prod", "C0OPS", [*expiring_in(200), kubelet])
    [(_, card)] = chat.posts
    assert "certificate kubelet-client on worker-2 expires in 5d" in card.headline
    assert "journalctl -u kubelet" in card.text and "rotate certs" not in card.text
