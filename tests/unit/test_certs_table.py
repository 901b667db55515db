"""kubeadm's expiry tables read as an operator reads them: names, dates, CAs, expired rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from playbooks.cert_checks import public_certificate_paths, split_printed_files
from playbooks.cert_rotation import renewed
from playbooks.certs_table import (
    CertsTableError,
    expiry_lines,
    parse_check_expiration,
    threshold_crossed,
)


def padded(text: str) -> str:
    """kubeadm's tabwriter pads the last column too: rows end in spaces."""
    return "\n".join(
        line + "      " if line.endswith((" no", " yes")) else line for line in text.splitlines()
    )


# As kubeadm v1.29 prints it.
HEALTHY = padded("""[check-expiration] Reading configuration from the cluster...
[check-expiration] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'

CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED
admin.conf                 Mar 15, 2023 01:59 UTC   362d            ca                      no
apiserver                  Mar 15, 2023 01:58 UTC   362d            ca                      no
apiserver-etcd-client      Mar 15, 2023 01:59 UTC   362d            etcd-ca                 no
apiserver-kubelet-client   Mar 15, 2023 01:59 UTC   362d            ca                      no
controller-manager.conf    Mar 15, 2023 01:59 UTC   362d            ca                      no
etcd-healthcheck-client    Mar 15, 2023 01:59 UTC   362d            etcd-ca                 no
etcd-peer                  Mar 15, 2023 01:59 UTC   362d            etcd-ca                 no
etcd-server                Mar 15, 2023 01:59 UTC   362d            etcd-ca                 no
front-proxy-client         Mar 15, 2023 01:59 UTC   362d            front-proxy-ca          no
scheduler.conf             Mar 15, 2023 01:59 UTC   362d            ca                      no

CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED
ca                      Mar 12, 2032 01:58 UTC   9y              no
etcd-ca                 Mar 12, 2032 01:58 UTC   9y              no
front-proxy-ca          Mar 12, 2032 01:58 UTC   9y              no
""")

# A cluster a year and a bit old: expired certificates, an external CA, a missing file.
EXPIRED = padded("""CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED
admin.conf                 Apr 09, 2024 09:17 UTC   <invalid>       ca                      no
apiserver                  Apr 09, 2024 09:16 UTC   <invalid>       ca                      yes
!MISSING! apiserver-etcd-client
front-proxy-client         May 01, 2024 09:16 UTC   12d                                     yes

CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED
ca                      Nov 03, 2029 14:13 UTC   6y              yes
front-proxy-ca          Nov 03, 2029 14:13 UTC   6y              no
""")


def test_both_tables_are_read_with_their_dates_in_utc_and_their_authorities() -> None:
    table = parse_check_expiration(HEALTHY)
    assert len(table.certificates) == 10 and len(table.authorities) == 3
    apiserver = next(row for row in table.certificates if row.name == "apiserver")
    assert apiserver.expires == datetime(2023, 3, 15, 1, 58, tzinfo=UTC)
    assert apiserver.authority == "ca" and apiserver.residual == "362d"
    assert not apiserver.externally_managed and not apiserver.is_authority
    assert [row.name for row in table.authorities] == ["ca", "etcd-ca", "front-proxy-ca"]
    assert all(row.is_authority for row in table.authorities)
    assert table.soonest() == apiserver


def test_expired_certificates_external_ones_and_missing_files_are_all_understood() -> None:
    table = parse_check_expiration(EXPIRED)
    by_name = {row.name: row for row in table.certificates}
    assert by_name["admin.conf"].residual == "<invalid>"
    assert by_name["apiserver"].externally_managed
    assert by_name["front-proxy-client"].authority == ""
    assert table.missing == ("apiserver-etcd-client",)
    assert table.authorities[0].externally_managed and not table.authorities[1].externally_managed
    now = datetime(2024, 5, 1, tzinfo=UTC)
    assert by_name["admin.conf"].days_left(now) < 0


def test_text_without_a_table_is_refused_with_what_was_expected() -> None:
    with pytest.raises(CertsTableError, match="RESIDUAL TIME"):
        parse_check_expiration("error execution phase: open /etc/kubernetes/pki/ca.crt")


def test_the_slack_table_puts_the_soonest_first_and_flags_what_is_within_30_days() -> None:
    table = parse_check_expiration(EXPIRED)
    headline, body = expiry_lines("cp-1", table, now=datetime(2024, 5, 1, tzinfo=UTC))
    assert headline == "*cp-1* · soonest: apiserver in EXPIRED ⚠️"
    rows = body.strip("`").splitlines()
    assert rows[1].startswith("apiserver ") and rows[1].endswith("⚠️")
    assert "apiserver-etcd-client" in rows[-1] and "MISSING" in rows[-1]
    assert not rows[-2].endswith("⚠️")  # the CA, years away


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [(45.0, None), (30.0, 30), (29.5, 30), (14.0, 14), (8.0, 14), (6.9, 7), (-3.0, 7)],
)
def test_the_most_urgent_threshold_crossed_is_named(days_left: float, expected: int | None) -> None:
    assert threshold_crossed(days_left, [30, 14, 7]) == expected


def test_only_public_certificates_may_ever_be_read() -> None:
    assert all(path.endswith(".crt") for path in public_certificate_paths())
    with pytest.raises(ValueError, match="not a public certificate"):
        public_certificate_paths(("apiserver.crt", "apiserver.key"))


def test_printed_files_are_split_by_their_names() -> None:
    text = "==> apiserver.crt <==\n-----BEGIN CERTIFICATE-----\nAAA\n==> etcd/peer.crt <==\nBBB\n"
    files = split_printed_files(text)
    assert files == {
        "apiserver.crt": "-----BEGIN CERTIFICATE-----\nAAA\n",
        "etcd/peer.crt": "BBB\n",
    }


def test_a_certificate_counts_as_renewed_when_later_or_a_fresh_year_out() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert renewed("2025-01-20T00:00:00+00:00", "2026-01-01T00:00:00+00:00", now=now)
    assert renewed("2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", now=now)
    assert not renewed("2025-01-20T00:00:00+00:00", "2025-01-20T00:00:00+00:00", now=now)
