"""Slack mrkdwn from text kubegate did not write: alert labels, reasons, command arguments,
cluster and SSH output. Escaped as Slack's "Escaping text" asks (`&`, `<`, `>` as entities),
so no mention (`<!channel>`, `<@U…>`, `<!subteam^…>`) and no live link ever comes from it.

Pure; only kubegate's own words, and mentions of IDs from signed requests, stay live markup.
"""

from __future__ import annotations

import re

from approvals import SLACK_USER_ID

# Slack sends a slash command's &, < and > as these; we undo them before escaping once more,
# so an echo reads as typed and is never escaped twice.
_SLACK_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
# kubegate's own outcome sentences start "Cancelled by <@U…>", "Rejected by …", "Aborted by …".
_OUTCOME_ACTOR = re.compile(r"^(\w+ by )&lt;@([UW][A-Z0-9]{2,})&gt;")


def escape(text: str) -> str:
    """Untrusted text as mrkdwn that shows it literally: never a mention, never a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def echo(slack_text: str) -> str:
    """A slash command's text (as Slack sent it) shown back as the person typed it, inert."""
    for entity, character in _SLACK_ENTITIES:
        slack_text = slack_text.replace(entity, character)
    return escape(slack_text)


def mention(user: str) -> str:
    """A person kubegate knows from a signed request; anything else is shown, not linked."""
    if user == "system":
        return "kubegate"
    return f"<@{user}>" if SLACK_USER_ID.match(user) else escape(user)


def outcome(text: str) -> str:
    """A job's outcome: its first words may name who ended it; the rest (cluster errors, step
    output) is shown literally."""
    return _OUTCOME_ACTOR.sub(r"\1<@\2>", escape(text), count=1)


def fenced(text: str) -> str:
    """Output in a code block: escaped too, since a code block is still mrkdwn text to Slack."""
    return f"```{escape(text)}```"
