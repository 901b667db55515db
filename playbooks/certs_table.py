"""Reading `kubeadm certs check-expiration` and saying what it means: typed rows, the soonest
expiry, the warning thresholds crossed, and the compact table `/kube certs` shows. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

DAY_S = 86400.0
WARN_DAYS = (30, 14, 7)
# kubeadm prints its tables with Go's tabwriter; a name never holds a space, a date always does.
_ROW = re.compile(
    r"^(?P<name>\S+)\s+(?P<expires>[A-Z][a-z]{2} \d{2}, \d{4} \d{2}:\d{2} UTC)\s+"
    r"(?P<residual>\S+)\s+(?:(?P<authority>\S+)\s+)?(?P<external>yes|no)\s*$"
)
_CERTIFICATES_HEADER = re.compile(r"^CERTIFICATE\s+EXPIRES\s+RESIDUAL TIME\s+CERTIFICATE AUTHORITY")
_AUTHORITIES_HEADER = re.compile(r"^CERTIFICATE AUTHORITY\s+EXPIRES\s+RESIDUAL TIME")
_MISSING = re.compile(r"^!MISSING!\s+(?P<name>\S+)")


class CertsTableError(ValueError):
    """The text is not kubeadm's expiry table; the message says what was expected."""


@dataclass(frozen=True)
class CertificateRow:
    name: str
    expires: datetime  # UTC
    residual: str  # as kubeadm prints it: `364d`, `9y`, `<invalid>` once expired
    authority: str | None  # the signing CA; None for a row of the CA table
    externally_managed: bool

    @property
    def is_authority(self) -> bool:
        return self.authority is None

    def days_left(self, now: datetime) -> float:
        return (self.expires - now).total_seconds() / DAY_S


@dataclass(frozen=True)
class ExpiryTable:
    certificates: tuple[CertificateRow, ...]
    authorities: tuple[CertificateRow, ...]
    missing: tuple[str, ...] = ()

    def rows(self) -> list[CertificateRow]:
        """Every row, soonest expiry first."""
        return sorted(
            (*self.certificates, *self.authorities), key=lambda row: (row.expires, row.name)
        )

    def soonest(self) -> CertificateRow | None:
        rows = self.rows()
        return rows[0] if rows else None


def parse_expires(text: str) -> datetime:
    """`Mar 15, 2023 01:59 UTC` -> an aware UTC datetime."""
    return datetime.strptime(text, "%b %d, %Y %H:%M UTC").replace(tzinfo=UTC)


def parse_check_expiration(text: str) -> ExpiryTable:
    """Both tables of `kubeadm certs check-expiration`; the `[check-expiration]` chatter and
    blank lines are skipped. Raises CertsTableError when no certificate row is found."""
    certificates: list[CertificateRow] = []
    authorities: list[CertificateRow] = []
    missing: list[str] = []
    section: list[CertificateRow] | None = None
    for line in text.splitlines():
        if _AUTHORITIES_HEADER.match(line):
            section = authorities
        elif _CERTIFICATES_HEADER.match(line):
            section = certificates
        elif (gone := _MISSING.match(line)) is not None:
            missing.append(gone["name"])
        elif section is not None and (row := _ROW.match(line.rstrip())) is not None:
            authority = row["authority"] if section is certificates else None
            if section is certificates and authority is None:
                authority = ""  # an externally managed certificate may name no CA
            section.append(
                CertificateRow(
                    name=row["name"],
                    expires=parse_expires(row["expires"]),
                    residual=row["residual"],
                    authority=authority,
                    externally_managed=row["external"] == "yes",
                )
            )
    if not certificates and not authorities:
        raise CertsTableError(
            "`kubeadm certs check-expiration` printed no certificate table "
            "(expected the CERTIFICATE / EXPIRES / RESIDUAL TIME columns)"
        )
    return ExpiryTable(tuple(certificates), tuple(authorities), tuple(missing))


def threshold_crossed(days_left: float, warn_days: Sequence[int] = WARN_DAYS) -> int | None:
    """The most urgent warning threshold `days_left` is within (7 before 14 before 30); None
    while it is further away than all of them."""
    within = [days for days in warn_days if days_left <= days]
    return min(within) if within else None


def left_words(days_left: float) -> str:
    if days_left < 0:
        return "EXPIRED"
    if days_left < 1:
        return f"{days_left * 24:.0f}h"
    return f"{int(days_left)}d"


def expiry_lines(
    node: str, table: ExpiryTable, *, now: datetime, warn_within: int = WARN_DAYS[0]
) -> list[str]:
    """One node's compact table for Slack, soonest first; ⚠️ marks what is within the warning."""
    soonest = table.soonest()
    headline = f"*{node}*"
    if soonest is not None:
        days = soonest.days_left(now)
        flag = " ⚠️" if days <= warn_within else ""
        headline += f" · soonest: {soonest.name} in {left_words(days)}{flag}"
    header = f"{'CERTIFICATE':<26} {'EXPIRES (UTC)':<17} {'LEFT':>7}  CA"
    lines = [header]
    for row in table.rows():
        days = row.days_left(now)
        flag = "  ⚠️" if days <= warn_within else ""
        authority = "(authority)" if row.is_authority else (row.authority or "-")
        external = " ext" if row.externally_managed else ""
        lines.append(
            f"{row.name:<26} {row.expires:%Y-%m-%d %H:%M} {left_words(days):>7}  "
            f"{authority}{external}{flag}"
        )
    lines += [f"{name:<26} MISSING" for name in table.missing]
    return [headline, "```" + "\n".join(lines) + "```"]


def kubelet_lines(
    expiries: Sequence[tuple[str, datetime]], *, now: datetime, warn_within: int = WARN_DAYS[0]
) -> list[str]:
    """Each node's kubelet client certificate, soonest first, as one compact table."""
    header = f"{'NODE':<26} {'EXPIRES (UTC)':<17} {'LEFT':>7}"
    lines = [header]
    for node, expires in sorted(expiries, key=lambda pair: (pair[1], pair[0])):
        days = (expires - now).total_seconds() / DAY_S
        flag = "  ⚠️" if days <= warn_within else ""
        lines.append(f"{node:<26} {expires:%Y-%m-%d %H:%M} {left_words(days):>7}{flag}")
    return [
        "*Kubelet client certificates* (kubelet-client-current.pem)",
        "```" + "\n".join(lines) + "```",
    ]
