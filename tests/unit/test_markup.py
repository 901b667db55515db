"""Untrusted text becomes inert mrkdwn (Slack's "Escaping text"): pure decisions, no server."""

from __future__ import annotations

from bot.markup import echo, escape, fenced, mention, outcome
from bot.silences import matchers, shown

HOSTILE = "<!channel> <!here> <!subteam^S0SRE> <@U0BOB> <https://evil.example|runbook> & co"


def test_escaped_text_holds_no_mention_and_no_link() -> None:
    text = escape(HOSTILE)
    assert "<" not in text and ">" not in text
    assert text.startswith("&lt;!channel&gt;") and text.endswith("&amp; co")


def test_an_echoed_command_reads_as_typed_and_is_escaped_once() -> None:
    # Slack sent a typed "<" as &lt;: shown once as &lt; (Slack displays "<"), not &amp;lt;.
    assert echo("cordon &lt;b&gt; &amp; <!here>") == "cordon &lt;b&gt; &amp; &lt;!here&gt;"


def test_only_slack_ids_from_signed_requests_become_mentions() -> None:
    assert mention("U0BOB") == "<@U0BOB>" and mention("system") == "kubegate"
    assert mention("<!channel>") == "&lt;!channel&gt;"


def test_an_outcome_keeps_only_its_leading_actor_mention() -> None:
    said = outcome("Aborted by <@U0BOB>. could not undo step 2: <!channel> <@U0EVE>")
    assert said.startswith("Aborted by <@U0BOB>.")
    assert "<!channel>" not in said and "<@U0EVE>" not in said
    assert outcome("kubegate failed at step 1: Rejected by <@U0EVE>") == escape(
        "kubegate failed at step 1: Rejected by <@U0EVE>"
    )


def test_output_in_a_code_block_is_escaped_too() -> None:
    assert fenced("<!here>") == "```&lt;!here&gt;```"


def test_a_silence_matches_every_label_of_the_alert_exactly() -> None:
    labels = {"alertname": "KubeletDown", "node": "worker-3", "severity": "critical"}
    assert [(m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in matchers(labels)] == [
        ("alertname", "KubeletDown", True, False),
        ("node", "worker-3", True, False),
        ("severity", "critical", True, False),
    ]
    assert shown({"team": "<!channel>"}) == '{team="&lt;!channel&gt;"}'
