"""`kubegate config check` understands reading rules and silence rules: read verbs opened to
everyone, `silence` as a policy verb with its longest duration, and rules that mix them up."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config

BASE = """
clusters:
  - name: prod
    channels: [C0PROD]
roles:
  sre: [U0ALICE, U0BOB]
policy:
"""


def config_with(tmp_path: Path, rules: str) -> Path:
    path = tmp_path / "kubegate.yaml"
    path.write_text(BASE + rules)
    return path


def test_read_verbs_opened_to_everyone_and_a_silence_rule_load(tmp_path: Path) -> None:
    path = config_with(
        tmp_path,
        """
  - verbs: [nodes, pods, status]
    clusters: [prod]
    requesters: ["*"]
  - verbs: [silence]
    requesters: [sre]
    approvals: 1
    approvers: [sre]
    longest: 30m
""",
    )
    config = load_config(path)
    assert config.policy[0].requesters == ["*"]
    assert config.policy[1].longest == timedelta(minutes=30)


def test_read_verbs_with_approvals_and_a_longest_outside_silence_are_named(
    tmp_path: Path,
) -> None:
    path = config_with(
        tmp_path,
        """
  - verbs: [nodes, cordon]
    requesters: [sre]
    approvals: 1
    approvers: [sre]
    longest: 1h
  - verbs: [silense]
    requesters: [sre]
""",
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    problems = "\n".join(error.value.problems)
    assert "policy[0]: `nodes` only read and are answered at once, never approved" in problems
    assert "policy[0].longest: only a rule for `silence` has a longest duration" in problems
    assert "policy[1].verbs[0]: unknown verb `silense` — did you mean `silence`?" in problems


def test_a_silence_rule_without_approvers_is_named_for_its_default_approval(
    tmp_path: Path,
) -> None:
    path = config_with(tmp_path, "  - verbs: [silence]\n    requesters: [sre]\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "`silence` 1" in "\n".join(error.value.problems)
