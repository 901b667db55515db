"""What `/kube backup pki` decides from a snapshot: only for a cluster that opted in and with a
Vault, read from the first control plane, the keys never named by content. No host, no Vault."""

from __future__ import annotations

import pytest

from commands import BackupEtcdCommand, BackupPkiCommand, parse_command
from playbooks.base import PlanError
from playbooks.inventory import Inventory
from playbooks.pki_backup import CLUSTER_PKI_FILES, PkiSnapshot, decide_pki_backup
from tests.unit.cluster_snapshots import CLUSTER

OPTED_IN = Inventory(pki_in_vault=True)


def test_backup_pki_and_backup_etcd_share_the_verb_and_differ_by_target() -> None:
    assert isinstance(parse_command("backup pki"), BackupPkiCommand)
    assert isinstance(parse_command("backup etcd"), BackupEtcdCommand)
    assert parse_command("backup pki").target == "pki"


def test_the_plan_reads_every_shared_file_from_the_first_control_plane_into_vault() -> None:
    plan = decide_pki_backup(PkiSnapshot("prod", OPTED_IN, True, CLUSTER))
    [step] = plan.steps
    assert plan.verb == "backup" and plan.target == "pki"
    assert "kubegate/pki/prod/cluster-pki" in step.title and "check-and-set" in step.title
    assert all(name in step.title for name in CLUSTER_PKI_FILES)
    assert "cp-1" in step.title


def test_a_cluster_that_did_not_opt_in_is_told_how_to() -> None:
    with pytest.raises(PlanError, match="pki_in_vault: true"):
        decide_pki_backup(PkiSnapshot("prod", Inventory(), True, CLUSTER))


def test_without_vault_the_backup_is_refused() -> None:
    with pytest.raises(PlanError, match="no Vault"):
        decide_pki_backup(PkiSnapshot("prod", OPTED_IN, False, CLUSTER))
