"""What a verb is (read-only or not, how many approvals by default) is said once, in its spec
in commands/, and the policy and the answers follow it."""

from __future__ import annotations

import io
from pathlib import Path

from approvals import PolicyRule
from bot.access import Access, reads_only
from bot.audit import AuditLog
from bot.clusters import Clusters
from bot.config import KubegateConfig
from bot.console import ConsoleChat
from bot.read_access import ReadAccess
from bot.readonly import ReadOnlyAnswers
from bot.redact import Redactor
from bot.store import Store
from commands import VERB_SPECS, find_verb

RULE_WITHOUT_APPROVALS = PolicyRule(
    verbs=["cordon", "upgrade", "rotate"], requesters=["sre"], approvers=["lead"]
)


async def no_group_members(group: str) -> set[str]:
    return set()


def access(*rules: PolicyRule) -> Access:
    return Access(roles={"sre": ["U0ALICE"]}, policy=rules, group_members=no_group_members)


def test_a_rule_without_approvals_takes_each_verbs_default_from_its_spec() -> None:
    policy = access(RULE_WITHOUT_APPROVALS)
    for verb, expected in (("cordon", 1), ("upgrade", 2), ("rotate", 2)):
        rule = policy.rule(verb, "prod")
        assert policy.approvals_needed(rule, verb) == expected == find_verb(verb).default_approvals


def test_a_rules_own_approvals_win_over_the_default() -> None:
    policy = access(RULE_WITHOUT_APPROVALS.model_copy(update={"approvals": 3}))
    assert policy.approvals_needed(policy.rule("cordon", "prod"), "cordon") == 3


async def test_read_only_verbs_need_no_rule_but_changes_and_job_control_do() -> None:
    policy = access()
    role_holder = frozenset({"sre"})  # reading needs a role (any), not a rule
    for spec in VERB_SPECS:
        decision = policy.may_request(None, verb=spec.name, cluster="prod", roles=role_holder)
        assert decision.allowed == spec.read_only, spec.name
    assert not reads_only("cancel") and not reads_only("retry") and reads_only("audit")


def test_every_read_only_verb_but_help_has_an_answer_and_nothing_else_does(
    tmp_path: Path,
) -> None:
    config = KubegateConfig.model_validate({"clusters": [{"name": "prod"}]})
    store = Store(tmp_path / "k.db")
    clusters = Clusters(
        config, default_kubeconfig=None, vault=None, backup_dir=tmp_path, redactor=Redactor()
    )
    answers = ReadOnlyAnswers(
        store=store,
        audit=AuditLog(store, Redactor()),
        chat=ConsoleChat(out=io.StringIO(), names={}),
        clusters=clusters,
        reads=ReadAccess(access=access(), audit=AuditLog(store, Redactor()), clusters=["prod"]),
        warn_days=[30],
    )
    read_only = {spec.name for spec in VERB_SPECS if spec.read_only} - {"help"}
    assert set(answers.by_verb) == read_only
    assert {"nodes", "status", "jobs", "audit"} <= read_only and "cordon" not in read_only
