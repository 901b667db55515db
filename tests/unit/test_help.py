"""`/kube help` as a user reads it: the overview, and one page per verb."""

from __future__ import annotations

import pytest

from commands import VERB_SPECS, VERBS, CommandError, Group, help_text, parse_command

DEFAULT_APPROVALS = {
    "cordon": 1,
    "uncordon": 1,
    "drain": 1,
    "taint": 1,
    "untaint": 1,
    "scale": 1,
    "backup": 1,
    "upgrade": 2,
    "provision": 2,
    "rotate": 2,
    "restore": 2,
}
READ_ONLY = ["help", "status", "nodes", "pods", "certs", "backups", "jobs", "job", "audit"]


def test_verbs_are_every_verb_of_the_design_in_help_order() -> None:
    assert VERBS == (
        "help",
        "status",
        "nodes",
        "pods",
        "certs",
        "backups",
        "cordon",
        "uncordon",
        "drain",
        "taint",
        "untaint",
        "scale",
        "backup",
        "upgrade",
        "provision",
        "rotate",
        "restore",
        "jobs",
        "job",
        "cancel",
        "retry",
        "audit",
    )


def test_overview_lists_every_verb_under_its_group() -> None:
    overview = help_text()
    for group in Group:
        assert group.value in overview
    for spec in VERB_SPECS:
        assert f"`/kube {spec.synopsis}`: {spec.summary}" in overview
    read_only, changes, jobs = (overview.index(group.value) for group in Group)
    assert read_only < overview.index("/kube status") < changes
    assert changes < overview.index("/kube drain") < jobs < overview.index("/kube audit")


def test_overview_points_to_per_verb_help() -> None:
    assert "/kube help <verb>" in help_text()


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_usage_examples_and_says_what_it_changes(verb: str) -> None:
    page = help_text(verb)
    assert f"`/kube {verb}" in page
    assert "Usage:" in page and "Examples:" in page
    assert "Changes the cluster" in page or "changes nothing" in page or "Acts on a job" in page


@pytest.mark.parametrize(("verb", "approvals"), DEFAULT_APPROVALS.items())
def test_verbs_that_change_the_cluster_show_their_default_approvals(
    verb: str, approvals: int
) -> None:
    page = help_text(verb)
    assert "Changes the cluster" in page
    assert f"Needs approval by default: {approvals}." in page


@pytest.mark.parametrize("verb", READ_ONLY)
def test_read_only_verbs_say_they_need_no_approval(verb: str) -> None:
    assert "changes nothing, needs no approval" in help_text(verb)


@pytest.mark.parametrize("verb", ["cancel", "retry"])
def test_job_control_approvals_are_left_to_policy(verb: str) -> None:
    assert f"as your team's policy sets for `{verb}`" in help_text(verb)


def test_drain_help_explains_its_options_and_defaults() -> None:
    page = help_text("drain")
    assert "`--timeout DURATION`: how long to wait for the pods to leave (default: 10m)" in page
    assert "`--delete-emptydir-data`" in page and "`--force`" in page
    assert "`--dry-run`" in page and "`--at" in page and "`--window NAME`" in page
    assert "`-c/--cluster NAME`" in page


def test_required_options_are_marked() -> None:
    assert "`--to v1.x.y`: the Kubernetes version to reach (required)" in help_text("upgrade")


def test_read_only_verbs_do_not_offer_scheduling() -> None:
    assert "--dry-run" not in help_text("status")


def test_help_for_a_mistyped_verb_suggests_the_nearest() -> None:
    with pytest.raises(CommandError) as caught:
        help_text("drian")
    assert caught.value.suggestion == "drain"


def test_every_help_example_parses() -> None:
    for spec in VERB_SPECS:
        for example in spec.examples:
            assert parse_command(example).verb == spec.name, example
