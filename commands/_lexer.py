"""Turn the text Slack sends into tokens: undo phone typography and Slack markup, then shlex."""

from __future__ import annotations

import re
import shlex

from commands._errors import CommandError

# Phones "smarten" quotes and turn `--` into a dash; people mean the ASCII characters.
_TYPOGRAPHY = str.maketrans(
    {
        "\u201c": '"',  # “
        "\u201d": '"',  # ”
        "\u201e": '"',  # „
        "\u2018": "'",  # ‘
        "\u2019": "'",  # ’
        "\u201a": "'",  # ‚
        "\u00a0": " ",  # no-break space, from copy and paste
    }
)
_DASHED_OPTION = re.compile(r"^[\u2014\u2013](?=[a-z])")  # —dry-run / –dry-run

# Slack escapes &, < and > and, when the command asks for it, wraps mentions and links.
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_LABELLED_LINK = re.compile(r"<(?:https?|mailto):[^|>]*\|([^>]*)>")
_SLACK_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


def normalize(text: str) -> str:
    """The text as the person meant to type it."""
    text = _MENTION.sub(r"\1", text)
    text = _LABELLED_LINK.sub(r"\1", text)
    for entity, character in _SLACK_ENTITIES:
        text = text.replace(entity, character)
    return text.translate(_TYPOGRAPHY)


def tokenize(text: str) -> list[str]:
    """Split like a shell would, so quotes group words; a leading `/kube` is dropped."""
    try:
        tokens = shlex.split(normalize(text), comments=False, posix=True)
    except ValueError as error:
        raise CommandError(_explain_shlex_error(str(error))) from None
    if tokens and tokens[0] == "/kube":
        tokens = tokens[1:]
    return [_DASHED_OPTION.sub("--", token) for token in tokens]


def _explain_shlex_error(reason: str) -> str:
    if "quotation" in reason:
        return (
            "A quote is not closed: every ' or \" needs its partner. "
            "Close it, or leave the quotes out if the value has no spaces."
        )
    if "escaped" in reason:
        return "The command ends with a lone backslash (\\): remove it and send again."
    return f"kubegate could not read the command ({reason}): check the quotes and send again."
