"""Every verb in help order, and finding one by name (with the nearest one for typos)."""

from __future__ import annotations

import difflib

from commands._errors import CommandError
from commands._models import Command, HelpCommand
from commands._spec import Arguments, Group, VerbSpec
from commands._verbs_change import CHANGE_VERBS
from commands._verbs_jobs import JOB_VERBS
from commands._verbs_read import READ_ONLY_VERBS
from commands._verbs_recovery import RECOVERY_VERBS


def _build_help(args: Arguments) -> Command:
    if not args.words:
        return args.build(HelpCommand)
    (topic,) = args.take("one verb")
    return args.build(HelpCommand, topic=find_verb(topic).name)


HELP = VerbSpec(
    name="help",
    group=Group.READ_ONLY,
    synopsis="help [verb]",
    summary="this overview, or one verb's usage, options and examples",
    usage="/kube help [verb]",
    build=_build_help,
    examples=("/kube help", "/kube help drain"),
)

VERB_SPECS: tuple[VerbSpec, ...] = (
    HELP,
    *READ_ONLY_VERBS,
    *CHANGE_VERBS,
    *RECOVERY_VERBS,
    *JOB_VERBS,
)
VERBS: tuple[str, ...] = tuple(spec.name for spec in VERB_SPECS)
_BY_NAME = {spec.name: spec for spec in VERB_SPECS}


def find_verb(word: str) -> VerbSpec:
    """The verb's spec; a phone's capital first letter is forgiven."""
    spec = _BY_NAME.get(word.lower())
    if spec is not None:
        return spec
    nearest = difflib.get_close_matches(word.lower(), VERBS, n=1, cutoff=0.7)
    if not nearest:
        raise CommandError(f"'{word}' is not a kubegate command. Type /kube help to see them all.")
    suggestion = _BY_NAME[nearest[0]]
    raise CommandError(
        f"'{word}' is not a kubegate command. Did you mean {suggestion.name}? "
        "Type /kube help to see them all.",
        suggestion=suggestion.name,
        usage=suggestion.usage,
    )
