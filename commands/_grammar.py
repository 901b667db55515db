"""`parse_command`: `/kube` text in, one typed, validated request out, or a CommandError."""

from __future__ import annotations

import difflib
import re

from pydantic import ValidationError

from commands._errors import CommandError
from commands._lexer import tokenize
from commands._models import Command, HelpCommand
from commands._registry import find_verb
from commands._spec import Arguments, OptionSpec, VerbSpec

_HELP_FLAGS = ("--help", "-h")
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}(:\d{2})?(Z|UTC)?")


def parse_command(text: str) -> Command:
    """Parse the text after `/kube`. Empty text asks for the help overview."""
    tokens = tokenize(text)
    if not tokens:
        return HelpCommand()
    spec = find_verb(tokens[0])
    if any(token in _HELP_FLAGS for token in tokens[1:]):
        return HelpCommand(topic=spec.name)
    arguments = _sort_arguments(spec, tokens[1:])
    try:
        return spec.build(arguments)
    except ValidationError as error:
        raise CommandError(_explain(error, spec)) from None


def _is_option(token: str) -> bool:
    return token.startswith("-") and len(token) > 1 and not _NEGATIVE_NUMBER.fullmatch(token)


def _sort_arguments(spec: VerbSpec, tokens: list[str]) -> Arguments:
    by_spelling = {name: option for option in spec.all_options for name in option.spellings}
    words: list[str] = []
    options: dict[str, str | bool | list[str]] = {}
    remaining = list(tokens)
    while remaining:
        token = remaining.pop(0)
        if not _is_option(token):
            words.append(token)
            continue
        spelling, has_inline_value, inline_value = token.partition("=")
        option = by_spelling.get(spelling)
        if option is None:
            raise _unknown_option(spelling, spec)
        if option.field in options and not option.repeatable:
            raise CommandError(f"{spelling} is given twice: keep one.", usage=spec.usage)
        if option.repeatable:
            given_now = (
                inline_value
                if has_inline_value
                else _take_value(option, spelling, remaining, by_spelling)
            )
            given = options.setdefault(option.field, [])
            assert isinstance(given, list)
            given.append(given_now)
        elif not option.takes_value:
            if has_inline_value:
                raise CommandError(
                    f"{spelling} is a switch and takes no value: write just {spelling}."
                )
            options[option.field] = True
        elif has_inline_value:
            options[option.field] = inline_value
        else:
            options[option.field] = _take_value(option, spelling, remaining, by_spelling)
    return Arguments(
        verb=spec.name,
        usage=spec.usage,
        words=tuple(words),
        options=options,
        required=tuple(option for option in spec.options if option.required),
    )


def _take_value(
    option: OptionSpec, spelling: str, remaining: list[str], known: dict[str, OptionSpec]
) -> str:
    if not remaining or remaining[0].partition("=")[0] in known:
        example = f", e.g. {option.example}" if option.example else ""
        raise CommandError(f"{spelling} needs a value{example}.")
    value = remaining.pop(0)
    # `--at 2026-12-01 02:00` without quotes arrives as two words; people mean one time.
    if (
        option.field == "at"
        and _DATE_ONLY.fullmatch(value)
        and remaining
        and _TIME_OF_DAY.fullmatch(remaining[0])
    ):
        value = f"{value} {remaining.pop(0)}"
        if remaining and remaining[0] == "UTC":
            remaining.pop(0)
    return value


def _unknown_option(spelling: str, spec: VerbSpec) -> CommandError:
    spellings = [name for option in spec.all_options for name in option.spellings]
    nearest = difflib.get_close_matches(spelling, spellings, n=1, cutoff=0.6)
    hint = f" Did you mean {nearest[0]}?" if nearest else ""
    if spellings:
        takes = "/kube {} takes {}.".format(spec.name, ", ".join(o.label for o in spec.all_options))
    else:
        takes = f"/kube {spec.name} takes no options."
    return CommandError(
        f"{spelling} is not an option of /kube {spec.name}.{hint} {takes}", usage=spec.usage
    )


def _explain(error: ValidationError, spec: VerbSpec) -> str:
    """The user's-words reasons in a ValidationError; never pydantic's own dump."""
    option_names = {option.field: option.name for option in spec.all_options}
    reasons: list[str] = []
    for detail in error.errors():
        cause = (detail.get("ctx") or {}).get("error")
        if isinstance(cause, ValueError):
            reason = str(cause)
        else:  # only reachable by building a model by hand with the wrong types
            field = ".".join(str(part) for part in detail["loc"])
            reason = f"{option_names.get(field, field)}: {detail['msg']}."
        if reason not in reasons:
            reasons.append(reason)
    return "\n".join(reasons)
