"""A bad config is refused whole, each problem with its path; `kubegate config check` says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from tests.unit.cli_in_process import kubegate

GOOD = """
clusters:
  - name: testbed
    context: testbed
    channels: [C0OPS]
roles:
  sre: [U0ALICE, U0BOB]
  lead: [U0CAROL]
policy:
  - verbs: [cordon, uncordon, drain, taint, untaint, scale]
    requesters: [sre, lead]
    approvals: 1
    approvers: [sre, lead]
"""


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return kubegate({"KUBEGATE_CONFIG": str(path), "PATH": "/usr/bin:/bin"}, "config", "check")


def check_with_the_installed_command(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kubegate"), "config", "check"],
        env={"KUBEGATE_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_example_config_of_the_issue_loads(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.cluster_for_channel("C0OPS") is config.clusters[0]
    assert config.windows.approval.total_seconds() == 1800
    assert check(path).returncode == 0


def test_every_problem_is_listed_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(
        GOOD.replace("approvers: [sre, lead]", "approvers: [ops]")
        .replace("U0BOB", "bob")
        .replace("name: testbed", "name: Test_Bed")
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    problems = "\n".join(raised.value.problems)
    assert "clusters[0].name: must be lowercase" in problems
    result = check(path)
    assert result.returncode == 2
    path.write_text(
        GOOD.replace("approvers: [sre, lead]", "approvers: [ops]").replace("U0BOB", "bob")
    )
    result = check(path)
    assert "policy[0].approvers[0]: unknown role `ops`" in result.stderr
    assert "roles.sre[1]: 'bob' is not a Slack user ID" in result.stderr


def test_unknown_keys_and_bad_windows_are_named(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(GOOD + "windows:\n  approval: soon\nplicy: []\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    problems = "\n".join(raised.value.problems)
    assert "windows.approval: 'soon' is not a duration" in problems
    assert "plicy: Extra inputs are not permitted" in problems


def test_a_misspelled_verb_an_unknown_role_and_a_bad_window_are_reported_together(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(
        GOOD.replace(
            "verbs: [cordon, uncordon, drain,", "verbs: [cordon, uncordon, drian,"
        ).replace("requesters: [sre, lead]", "requesters: [sre, leads]")
        + "maintenance_windows:\n  weekend: {weekdays: [sat], start: '02:00', duration: 4x}\n"
    )
    result = check_with_the_installed_command(path)
    assert result.returncode == 2
    assert "policy[0].verbs[2]: unknown verb `drian` — did you mean `drain`?" in result.stderr
    assert "policy[0].requesters[1]: unknown role `leads` — did you mean `lead`?" in result.stderr
    assert "maintenance_windows.weekend.duration: '4x' is not a duration" in result.stderr


def test_cross_references_are_checked_even_when_the_schema_is_broken(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(
        GOOD.replace("approvers: [sre, lead]", "approvers: [sre, ops]")
        + "windows:\n  approval: soon\n"
        + "freezes:\n  - {name: xmas, start: 2026-12-24, end: 2026-12-20, clusters: [prod]}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == [
        "windows.approval: 'soon' is not a duration: write a number with a unit, "
        "e.g. 30s, 10m, 2h, 1h30m or 7d.",
        "policy[0].approvers[1]: unknown role `ops`",
        "freezes[0].clusters[0]: unknown cluster `prod`",
        "freezes[0].end: 2026-12-20 00:00:00 is not after its start 2026-12-24 00:00:00",
    ]


def test_a_window_of_zero_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(
        GOOD
        + "windows:\n  execution: 0\n"
        + "maintenance_windows:\n  long: {weekdays: [sun], start: '01:00', duration: 8d}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == [
        "windows.execution: must be longer than zero",
        "maintenance_windows.long.duration: 8d is longer than a week; "
        "a weekly slot would overlap the next",
    ]


def test_a_rule_without_approvals_or_approvers_is_named_for_its_verbs_defaults(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(GOOD + "  - verbs: [nodes, upgrade]\n    requesters: [sre]\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == [
        "policy[1].approvers: no approver role, but without `approvals:` each verb needs its "
        "default number of approvals (`upgrade` 2)"
    ]


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = check(tmp_path / "nope.yaml")
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_the_file_to_check_may_be_named_on_the_command_line(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("verbs: [cordon", "verbs: [cordn"))
    env = {"KUBEGATE_CONFIG": str(bad), "PATH": "/usr/bin:/bin"}
    named = kubegate(env, "config", "check", str(good))
    assert named.returncode == 0 and f"{good}: OK" in named.stdout
    result = kubegate({"PATH": "/usr/bin:/bin"}, "config", "check", str(bad))
    assert result.returncode == 2 and "did you mean `cordon`" in result.stderr
