"""Turn the text Slack sends into tokens: undo phone typography and Slack markup, then shlex."""

from __future__ import annotations

import re

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
# Inside Slack's markup a literal < or > is always escaped, so no pattern crosses one: each
# attempt stops at the next < or >, which keeps matching linear in the text's length (a label
# pattern that ran on to the end, as `[^>]*` did, made long input quadratic).
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
_LABELLED_LINK = re.compile(r"<(?:https?|mailto):[^|<>]*\|([^<>]*)>")
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
        tokens = split_like_a_shell(normalize(text))
    except ValueError as error:
        raise CommandError(_explain_shlex_error(str(error))) from None
    if tokens and tokens[0] == "/kube":
        tokens = tokens[1:]
    return [_DASHED_OPTION.sub("--", token) for token in tokens]


# Where a run of ordinary characters ends: whitespace, a quote or a backslash.
_SHELL_SPECIAL = re.compile(r"[ \t\r\n'\"\\]")
_DOUBLE_QUOTED_SPECIAL = re.compile(r'["\\]')


def split_like_a_shell(text: str) -> list[str]:
    """`shlex.split(text)` (POSIX rules, no comments), in time linear in the text's length.

    shlex grows each token one character at a time, which is quadratic in a token's length:
    a 200 KB word froze the bot for seconds. Same tokens, same errors (ValueError).
    """
    tokens: list[str] = []
    word: list[str] = []
    in_word = False
    at = 0
    while at < len(text):
        character = text[at]
        if character in " \t\r\n":
            if in_word:
                tokens.append("".join(word))
                word.clear()
                in_word = False
            at += 1
            continue
        in_word = True
        if character == "'":
            end = text.find("'", at + 1)
            if end < 0:
                raise ValueError("No closing quotation")
            word.append(text[at + 1 : end])
            at = end + 1
        elif character == '"':
            at = _double_quoted(text, at + 1, word)
        elif character == "\\":
            if at + 1 == len(text):
                raise ValueError("No escaped character")
            word.append(text[at + 1])
            at += 2
        else:
            special = _SHELL_SPECIAL.search(text, at)
            end = special.start() if special else len(text)
            word.append(text[at:end])
            at = end
    if in_word:
        tokens.append("".join(word))
    return tokens


def _double_quoted(text: str, at: int, word: list[str]) -> int:
    """Read a "…" body starting at `at` into `word`; where reading goes on after the quote.
    Inside, a backslash escapes only " and itself, as in shlex."""
    while True:
        special = _DOUBLE_QUOTED_SPECIAL.search(text, at)
        if special is None:
            raise ValueError("No closing quotation")
        word.append(text[at : special.start()])
        at = special.start()
        if text[at] == '"':
            return at + 1
        if at + 1 == len(text):
            raise ValueError("No escaped character")
        escaped = text[at + 1]
        word.append(escaped if escaped in '"\\' else "\\" + escaped)
        at += 2


def _explain_shlex_error(reason: str) -> str:
    if "quotation" in reason:
        return (
            "A quote is not closed: every ' or \" needs its partner. "
            "Close it, or leave the quotes out if the value has no spaces."
        )
    if "escaped" in reason:
        return "The command ends with a lone backslash (\\): remove it and send again."
    return f"kubegate could not read the command ({reason}): check the quotes and send again."
