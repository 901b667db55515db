"""The `/kube` grammar as a user meets it: what parses into which request, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address

import pytest
from pydantic import ValidationError

from commands import (
    VERBS,
    AuditCommand,
    BackupEtcdCommand,
    BackupsCommand,
    CancelCommand,
    CertsCommand,
    Command,
    CommandError,
    CordonCommand,
    DrainCommand,
    HelpCommand,
    JobCommand,
    JobsCommand,
    MutatingCommand,
    NodesCommand,
    PodsCommand,
    ProvisionNodeCommand,
    RestoreEtcdCommand,
    RetryCommand,
    RotateCertsCommand,
    ScaleHpaCommand,
    StatusCommand,
    TaintCommand,
    UncordonCommand,
    UntaintCommand,
    UpgradeClusterCommand,
    UpgradeNodeCommand,
    parse_command,
)

NODE_RULE = "DNS-1123 subdomain, at most 253 characters"
LABEL_RULE = "DNS-1123 label, at most 63 characters"


def refusal(text: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    return caught.value


# Every verb, parsed happily ----------------------------------------------------------------

HAPPY = [
    ("help", HelpCommand(), "help"),
    ("help drain", HelpCommand(topic="drain"), "drain"),
    ("status", StatusCommand(), "cluster"),
    ("nodes", NodesCommand(), "nodes"),
    ("pods worker-1", PodsCommand(node="worker-1"), "worker-1"),
    ("certs", CertsCommand(), "certs"),
    ("cordon worker-2", CordonCommand(node="worker-2"), "worker-2"),
    ("uncordon worker-2", UncordonCommand(node="worker-2"), "worker-2"),
    ("drain worker-1", DrainCommand(node="worker-1"), "worker-1"),
    (
        "taint worker-4 dedicated=gpu:NoSchedule",
        TaintCommand(node="worker-4", key="dedicated", value="gpu", effect="NoSchedule"),
        "worker-4",
    ),
    (
        "taint worker-4 example.com/drain:NoExecute",
        TaintCommand(node="worker-4", key="example.com/drain", effect="NoExecute"),
        "worker-4",
    ),
    ("untaint worker-4 dedicated", UntaintCommand(node="worker-4", key="dedicated"), "worker-4"),
    (
        "untaint worker-4 dedicated:PreferNoSchedule",
        UntaintCommand(node="worker-4", key="dedicated", effect="PreferNoSchedule"),
        "worker-4",
    ),
    (
        "scale hpa shop/web --min 3 --max 12",
        ScaleHpaCommand(namespace="shop", name="web", min_replicas=3, max_replicas=12),
        "shop/web",
    ),
    ("backup etcd", BackupEtcdCommand(), "etcd"),
    ("backups", BackupsCommand(), "etcd"),
    (
        'restore etcd etcd-prod-job12-20261130T020000Z --break-glass "INC-7"',
        RestoreEtcdCommand(backup="etcd-prod-job12-20261130T020000Z", break_glass="INC-7"),
        "etcd",
    ),
    (
        "upgrade worker-3 --to v1.31.2",
        UpgradeNodeCommand(node="worker-3", to_version="v1.31.2"),
        "worker-3",
    ),
    ("upgrade cluster --to v1.31.2", UpgradeClusterCommand(to_version="v1.31.2"), "cluster"),
    (
        "provision node worker-5 --address 10.0.0.15",
        ProvisionNodeCommand(node="worker-5", address=IPv4Address("10.0.0.15")),
        "worker-5",
    ),
    ("rotate certs", RotateCertsCommand(), "cluster"),
    ("rotate certs --node cp-1", RotateCertsCommand(node="cp-1"), "cp-1"),
    ("jobs", JobsCommand(), "jobs"),
    ("job 42", JobCommand(job_id=42), "job #42"),
    ("cancel 42", CancelCommand(job_id=42), "job #42"),
    ("retry 42", RetryCommand(job_id=42), "job #42"),
    ("audit", AuditCommand(), "audit"),
]


@pytest.mark.parametrize(("text", "expected", "target"), HAPPY, ids=[h[0] for h in HAPPY])
def test_every_verb_parses_into_its_request_with_its_target(
    text: str, expected: Command, target: str
) -> None:
    command = parse_command(text)
    assert command == expected
    assert type(command) is type(expected)
    assert command.target == target


def test_every_verb_of_the_design_is_parsed_by_some_example() -> None:
    assert {parse_command(text).verb for text, _, _ in HAPPY} == set(VERBS)


def test_verb_is_the_first_word_that_policy_rules_name() -> None:
    assert parse_command("upgrade cluster --to v1.31.2").verb == "upgrade"
    assert parse_command("scale hpa shop/web --min 1 --max 2").verb == "scale"
    assert parse_command("rotate certs").verb == "rotate"


def test_only_verbs_that_change_the_cluster_are_mutating() -> None:
    for text, _, _ in HAPPY:
        command = parse_command(text)
        assert command.mutating == isinstance(command, MutatingCommand), text
    assert parse_command("drain worker-1").mutating
    assert not parse_command("status").mutating
    assert not parse_command("cancel 4").mutating


def test_summaries_read_in_operator_words() -> None:
    assert parse_command("cordon worker-2").summary() == "Cordon worker-2"
    assert (
        parse_command("drain worker-1 --delete-emptydir-data").summary()
        == "Drain worker-1 (timeout 10m, delete emptyDir data)"
    )
    assert (
        parse_command("scale hpa shop/web --min 2 --max 10").summary()
        == "Scale HPA shop/web to min 2, max 10"
    )
    assert parse_command("upgrade worker-3 --to v1.31.2").summary() == "Upgrade worker-3 to v1.31.2"
    for text, _, _ in HAPPY:
        assert parse_command(text).summary()


def test_empty_text_asks_for_the_help_overview() -> None:
    assert parse_command("") == HelpCommand()
    assert parse_command("   ") == HelpCommand()


def test_a_leading_slash_kube_and_a_phone_capitalised_verb_are_forgiven() -> None:
    assert parse_command("/kube Cordon worker-1") == CordonCommand(node="worker-1")


def test_help_flag_on_any_verb_asks_for_that_verbs_help() -> None:
    assert parse_command("drain --help") == HelpCommand(topic="drain")
    assert parse_command("scale -h") == HelpCommand(topic="scale")


# Options -----------------------------------------------------------------------------------


def test_drain_takes_timeout_and_its_two_switches() -> None:
    command = parse_command("drain worker-1 --timeout 1h30m --delete-emptydir-data --force")
    assert command == DrainCommand(
        node="worker-1",
        timeout=timedelta(hours=1, minutes=30),
        delete_emptydir_data=True,
        force=True,
    )
    assert command.summary() == "Drain worker-1 (timeout 1h30m, delete emptyDir data, force)"


def test_drain_waits_ten_minutes_by_default() -> None:
    command = parse_command("drain worker-1")
    assert isinstance(command, DrainCommand)
    assert command.timeout == timedelta(minutes=10)
    assert not command.force and not command.delete_emptydir_data


def test_options_accept_a_separate_value_or_an_equals_sign() -> None:
    spaced = parse_command("drain worker-1 --timeout 30s -c prod")
    joined = parse_command("drain worker-1 --timeout=30s --cluster=prod")
    assert spaced == joined
    assert isinstance(spaced, DrainCommand)
    assert spaced.timeout == timedelta(seconds=30) and spaced.cluster == "prod"


def test_options_may_come_before_the_target() -> None:
    assert parse_command("cordon --dry-run worker-1") == CordonCommand(
        node="worker-1", dry_run=True
    )


@pytest.mark.parametrize("text", ["status -c prod", "nodes --cluster prod", "pods w-1 -c prod"])
def test_any_verb_but_help_picks_a_cluster(text: str) -> None:
    assert parse_command(text).cluster == "prod"


def test_every_mutating_verb_accepts_dry_run() -> None:
    for text, expected, _ in HAPPY:
        if expected.mutating:
            alone = text.split(" --break-glass")[0]  # a dry run never breaks glass
            command = parse_command(f"{alone} --dry-run")
            assert isinstance(command, MutatingCommand) and command.dry_run, text


def test_upgrade_cluster_takes_max_unavailable() -> None:
    command = parse_command("upgrade cluster --to v1.31.2 --max-unavailable 2")
    assert command == UpgradeClusterCommand(to_version="v1.31.2", max_unavailable=2)
    assert command.summary() == "Upgrade the cluster to v1.31.2 (at most 2 workers down at a time)"


def test_provision_takes_a_role_and_an_ipv6_address() -> None:
    command = parse_command("provision node cp-4 --address fd00::15 --role control-plane")
    assert command == ProvisionNodeCommand(
        node="cp-4", address=IPv6Address("fd00::15"), role="control-plane"
    )


def test_audit_filters_by_time_person_and_node() -> None:
    command = parse_command("audit --since 7d --user U024BE7LH --node worker-1")
    assert command == AuditCommand(since=timedelta(days=7), user="U024BE7LH", node="worker-1")


def test_audit_accepts_a_slack_mention_for_the_user() -> None:
    command = parse_command("audit --user <@W024BE7LH|bob>")
    assert isinstance(command, AuditCommand) and command.user == "W024BE7LH"


def test_job_ids_may_be_copied_with_their_hash() -> None:
    assert parse_command("job #42") == JobCommand(job_id=42)
    assert parse_command("cancel #7") == CancelCommand(job_id=7)


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
    ],
)
def test_durations_are_written_with_units(text: str, duration: timedelta) -> None:
    command = parse_command(f"audit --since {text}")
    assert isinstance(command, AuditCommand) and command.since == duration


# Scheduling --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'drain worker-1 --at "2026-12-01 02:00"',
        "drain worker-1 --at 2026-12-01 02:00",
        "drain worker-1 --at 2026-12-01T02:00Z",
        "drain worker-1 --at=2026-12-01T02:00",
        "drain worker-1 --at 2026-12-01T03:00+01:00",
        'drain worker-1 --at "2026-12-01 02:00 UTC"',
    ],
)
def test_at_is_read_as_utc_and_is_timezone_aware(text: str) -> None:
    command = parse_command(text)
    assert isinstance(command, DrainCommand)
    assert command.at == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert command.at is not None and command.at.utcoffset() == timedelta(0)


def test_window_names_a_maintenance_window() -> None:
    command = parse_command("upgrade cluster --to v1.31.2 --window weekend")
    assert isinstance(command, MutatingCommand) and command.window == "weekend"


def test_at_and_window_cannot_both_be_given() -> None:
    error = refusal('drain worker-1 --at "2026-12-01 02:00" --window weekend')
    assert "either --at or --window" in error.message


def test_a_date_without_a_time_is_refused_with_the_form_to_use() -> None:
    error = refusal("drain worker-1 --at 2026-12-01")
    assert "time of day" in error.message and '"2026-12-01 02:00"' in error.message


def test_an_unreadable_time_is_refused_with_the_form_to_use() -> None:
    assert "2026-12-01 02:00" in refusal("drain worker-1 --at tomorrow").message


def test_a_dry_run_cannot_be_scheduled() -> None:
    assert "--dry-run" in refusal("drain worker-1 --dry-run --window weekend").message


def test_break_glass_carries_a_reason() -> None:
    command = parse_command('drain worker-1 --break-glass "INC-123 API down"')
    assert isinstance(command, DrainCommand) and command.break_glass == "INC-123 API down"
    assert "needs a reason" in refusal('drain worker-1 --break-glass "  "').message


# Typography from phones and Slack ----------------------------------------------------------


def test_smart_quotes_from_phones_group_words_like_plain_quotes() -> None:
    command = parse_command("drain worker-1 --break-glass \u201cAPI is down\u201d")
    assert isinstance(command, DrainCommand) and command.break_glass == "API is down"
    assert parse_command("cordon \u2018worker-1\u2019") == CordonCommand(node="worker-1")


def test_a_phone_dash_in_front_of_an_option_counts_as_two_hyphens() -> None:
    assert parse_command("cordon worker-1 \u2014dry-run") == CordonCommand(
        node="worker-1", dry_run=True
    )


def test_slack_escaped_characters_are_read_as_typed() -> None:
    error = refusal("cordon a&amp;b")
    assert "'a&b' is not a valid node name" in error.message


def test_an_unbalanced_quote_is_refused_with_what_to_do() -> None:
    error = refusal("cordon 'worker-1")
    assert "quote is not closed" in error.message


# Refusals, each naming its rule --------------------------------------------------------------


def test_shell_metacharacters_in_node_name_are_refused_with_the_rule() -> None:
    error = refusal("cordon 'a;rm -rf /'")
    assert error.message.startswith("'a;rm -rf /' is not a valid node name")
    assert NODE_RULE in error.message


def test_a_semicolon_glued_to_a_node_name_is_refused() -> None:
    error = refusal("cordon worker-1;id")
    assert error.message == (
        "'worker-1;id' is not a valid node name: use lowercase letters, digits, '-' and '.', "
        "starting and ending with a letter or digit (DNS-1123 subdomain, at most 253 characters)."
    )


def test_a_path_is_not_a_node_name() -> None:
    assert NODE_RULE in refusal("pods ../x").message


def test_a_path_as_namespace_is_refused_with_the_label_rule() -> None:
    error = refusal("scale hpa ../x --min 1 --max 2")
    assert "'..' is not a valid namespace" in error.message and LABEL_RULE in error.message


def test_a_node_name_longer_than_253_characters_is_refused() -> None:
    assert NODE_RULE in refusal(f"cordon {'a' * 254}").message


def test_an_unknown_taint_effect_names_the_three_effects() -> None:
    error = refusal("taint worker-1 key=v:Bogus")
    assert "effect must be NoSchedule, PreferNoSchedule or NoExecute" in error.message


def test_a_taint_without_an_effect_shows_the_form() -> None:
    assert "key=value:Effect" in refusal("taint worker-1 dedicated=gpu").message


@pytest.mark.parametrize("verb", ["taint worker-1 {}:NoSchedule", "untaint worker-1 {}"])
def test_kubernetes_managed_taints_are_never_touched(verb: str) -> None:
    error = refusal(verb.format("node.kubernetes.io/unreachable"))
    assert "kubegate never touches node.kubernetes.io/* taints: Kubernetes manages them" in (
        error.message
    )


def test_an_invalid_taint_key_is_refused_with_the_qualified_name_rule() -> None:
    assert "Kubernetes qualified name" in refusal("taint worker-1 bad_:NoSchedule").message


def test_kubectl_style_taint_removal_points_to_untaint() -> None:
    assert (
        "/kube untaint worker-1 key:NoSchedule" in refusal("taint worker-1 key:NoSchedule-").message
    )


def test_kubectl_style_untaint_with_a_trailing_dash_is_understood() -> None:
    assert parse_command("untaint worker-1 key:NoSchedule-") == UntaintCommand(
        node="worker-1", key="key", effect="NoSchedule"
    )


def test_hpa_bounds_out_of_order_are_refused_before_anything_runs() -> None:
    error = refusal("scale hpa shop/web --min 5 --max 3")
    assert "1 ≤ min ≤ max" in error.message


def test_hpa_bounds_below_one_are_refused() -> None:
    assert "1 to" in refusal("scale hpa shop/web --min 0 --max 3").message


def test_a_model_built_by_hand_is_held_to_the_same_rules() -> None:
    with pytest.raises(ValidationError):
        ScaleHpaCommand(namespace="shop", name="web", min_replicas=5, max_replicas=3)
    with pytest.raises(ValidationError):
        CordonCommand(node="worker-1;id")


def test_a_version_without_the_v_and_patch_shows_the_expected_form() -> None:
    error = refusal("upgrade worker-3 --to 1.31")
    assert "'1.31'" in error.message and "v1.31.2" in error.message


def test_a_version_missing_only_the_v_gets_the_corrected_spelling() -> None:
    assert "did you mean v1.31.2?" in refusal("upgrade worker-3 --to 1.31.2").message


def test_upgrade_needs_a_target_version() -> None:
    error = refusal("upgrade worker-3")
    assert "--to" in error.message and error.usage is not None


def test_max_unavailable_is_for_cluster_upgrades_only() -> None:
    assert "upgrade cluster only" in refusal("upgrade w-1 --to v1.31.2 --max-unavailable 2").message


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("scale deployment shop/web --min 1 --max 2", "hpa"),
        ("provision worker-5 --address 10.0.0.1", "node"),
        ("rotate keys", "certs"),
    ],
)
def test_verbs_that_name_their_object_refuse_any_other(text: str, keyword: str) -> None:
    error = refusal(text)
    assert f"{keyword} …" in error.message and error.usage is not None


@pytest.mark.parametrize("text", ["backup vault", "backup"])
def test_backup_names_both_of_its_objects_when_given_another(text: str) -> None:
    error = refusal(text)
    assert "/kube backup takes etcd or pki" in error.message
    assert "/kube backup etcd or /kube backup pki" in error.message and error.usage is not None


def test_an_hpa_without_its_namespace_is_refused() -> None:
    assert "shop/web" in refusal("scale hpa web --min 1 --max 2").message


@pytest.mark.parametrize(
    "address", ["10.0.0.0/24", "fe80::1%eth0", "0.0.0.0", "worker-5", "10.0.0.256"]
)
def test_provision_needs_one_host_address(address: str) -> None:
    refusal(f"provision node worker-5 --address {address}")


def test_an_unknown_role_names_the_two_roles() -> None:
    error = refusal("provision node w-5 --address 10.0.0.5 --role master")
    assert "worker or control-plane" in error.message


@pytest.mark.parametrize("job_id", ["0", "-5", "abc", "4.2"])
def test_job_ids_are_positive_whole_numbers(job_id: str) -> None:
    assert "is not a job id" in refusal(f"job {job_id}").message


def test_a_display_name_is_not_a_user_id() -> None:
    assert "Slack user ID" in refusal("audit --user @bob").message


@pytest.mark.parametrize("duration", ["600", "0s", "ten minutes", "5w"])
def test_a_duration_needs_a_unit_and_a_length(duration: str) -> None:
    assert "duration" in refusal(f"drain worker-1 --timeout '{duration}'").message


# Unknown verbs and options, missing and extra words ------------------------------------------


def test_unknown_verb_without_a_near_one_points_to_help() -> None:
    error = refusal("frobnicate")
    assert error.suggestion is None and error.usage is None
    assert "'frobnicate' is not a kubegate command" in error.message
    assert "/kube help" in error.message


def test_mistyped_verb_suggests_the_nearest_with_its_usage() -> None:
    error = refusal("cordn worker-1")
    assert error.suggestion == "cordon"
    assert error.usage == "/kube cordon <node>"
    assert "Did you mean cordon?" in error.message and "/kube help" in error.message


def test_unknown_option_is_named_with_the_verbs_options() -> None:
    error = refusal("drain worker-1 --timout 5m")
    assert "--timout is not an option of /kube drain" in error.message
    assert "Did you mean --timeout?" in error.message
    assert "--delete-emptydir-data" in error.message


def test_a_switch_given_a_value_is_refused() -> None:
    assert "takes no value" in refusal("drain worker-1 --force=yes").message


def test_an_option_without_its_value_says_so() -> None:
    assert "--timeout needs a value" in refusal("drain worker-1 --timeout").message
    assert "--timeout needs a value" in refusal("drain worker-1 --timeout --force").message


def test_an_option_given_twice_is_refused() -> None:
    assert "twice" in refusal("drain worker-1 --force --force").message


def test_a_missing_node_is_refused_with_the_usage() -> None:
    error = refusal("cordon")
    assert "needs the name of a node" in error.message
    assert error.usage == "/kube cordon <node>"


def test_an_extra_word_is_refused_with_the_usage() -> None:
    error = refusal("cordon worker-1 worker-2")
    assert "'worker-2' is one word too many" in error.message
    assert error.usage == "/kube cordon <node>"


def test_help_on_an_unknown_verb_suggests_the_nearest() -> None:
    assert refusal("help cordn").suggestion == "cordon"


def test_error_text_shows_message_then_usage() -> None:
    assert (
        refusal("cordon").text
        == "/kube cordon needs the name of a node.\nUsage:\n/kube cordon <node>"
    )


@pytest.mark.parametrize(
    "text",
    [
        "cordon 'a;rm -rf /'",
        "taint w k=v:Bogus",
        "scale hpa a/b --min x --max y",
        "provision node w --address nope",
        "audit --since soon",
        "job abc",
    ],
)
def test_refusals_never_show_pydantic_internals(text: str) -> None:
    message = refusal(text).message
    assert "validation error" not in message
    assert "Value error" not in message
    assert "pydantic" not in message and "Traceback" not in message


def test_a_duration_longer_than_ten_years_is_refused() -> None:
    assert "at most 3650d" in refusal("audit --since 99999d").message


def test_a_time_past_the_calendar_is_refused_not_crashed() -> None:
    assert "out of range" in refusal('drain worker-1 --at "9999-12-31 23:00-05:00"').message
