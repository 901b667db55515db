"""What a verb is made of: its words, options, help text, default approvals and builder.

Adding a verb means writing one `VerbSpec` (in the `_verbs_*` module of its group) and listing
it in `_registry.py`; parsing and help both read from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from commands._errors import CommandError
from commands._models import Command


class Group(Enum):
    """How the help overview groups verbs, in this order."""

    READ_ONLY = "Read-only (no approval needed)"
    CHANGES = "Changes the cluster (planned, approved, audited)"
    JOBS = "Jobs and audit"


@dataclass(frozen=True)
class OptionSpec:
    """One `--option`. `value_name` is None for a flag; `field` is the model field it fills."""

    name: str
    field: str
    meaning: str
    value_name: str | None = None
    default: str | None = None
    example: str | None = None
    required: bool = False
    short: str | None = None
    # May be given more than once (`--label a=1 --label b=2`); the field gets the list.
    repeatable: bool = False

    @property
    def takes_value(self) -> bool:
        return self.value_name is not None

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name,) if self.short is None else (self.short, self.name)

    @property
    def label(self) -> str:
        """How help writes it: `-c/--cluster NAME`."""
        names = "/".join(self.spellings)
        return f"{names} {self.value_name}" if self.value_name else names


CLUSTER_OPTION = OptionSpec(
    "--cluster",
    "cluster",
    "which cluster to act on",
    value_name="NAME",
    default="the channel's cluster",
    example="-c prod",
    short="-c",
)
SCHEDULING_OPTIONS = (
    OptionSpec("--dry-run", "dry_run", "show the plan only; nothing is run"),
    OptionSpec(
        "--at",
        "at",
        "run at this time, in UTC, once approved",
        value_name='"YYYY-MM-DD HH:MM"',
        example='--at "2026-12-01 02:00"',
    ),
    OptionSpec(
        "--window",
        "window",
        "run in the next slot of this maintenance window",
        value_name="NAME",
        example="--window weekend",
    ),
    OptionSpec(
        "--break-glass",
        "break_glass",
        "emergencies only: run without approval (if your role may), with a loud notice "
        "and a review item",
        value_name='"REASON"',
        example='--break-glass "INC-123 API down"',
    ),
)


@dataclass(frozen=True)
class Arguments:
    """A command's words after the verb, sorted into positional words and options by field."""

    verb: str
    usage: str
    words: tuple[str, ...]
    options: Mapping[str, str | bool | list[str]]
    required: tuple[OptionSpec, ...] = ()

    def take(self, *wanted: str) -> tuple[str, ...]:
        """The positional words, exactly one per description in `wanted` (e.g. "a node name")."""
        if len(self.words) < len(wanted):
            missing = wanted[len(self.words)]
            raise CommandError(f"/kube {self.verb} needs {missing}.", usage=self.usage)
        if len(self.words) > len(wanted):
            extra = self.words[len(wanted)]
            raise CommandError(
                f"'{extra}' is one word too many for /kube {self.verb}. "
                "A value with spaces goes in quotes.",
                usage=self.usage,
            )
        return self.words

    def build(self, model: type[Command], **fields: object) -> Command:
        """The model from the given fields plus every option the user gave.

        Required options are checked here, after the builder has checked the words, so the
        answer to `scale deploy x` is about `hpa`, not about a missing `--min`.
        """
        missing = [option for option in self.required if option.field not in self.options]
        if missing:
            needed = " and ".join(f"{option.name} (e.g. {option.example})" for option in missing)
            raise CommandError(f"/kube {self.verb} needs {needed}.", usage=self.usage)
        return model.model_validate({**fields, **self.options})


@dataclass(frozen=True)
class VerbSpec:
    """Everything about one verb: grammar, help and default approvals live here only."""

    name: str
    group: Group
    synopsis: str
    summary: str
    usage: str
    build: Callable[[Arguments], Command]
    options: tuple[OptionSpec, ...] = ()
    examples: tuple[str, ...] = ()
    # None means the team's policy decides, with no default of ours to show.
    default_approvals: int | None = 0
    reaches: str = ""
    notes: tuple[str, ...] = ()
    # Acts on kubegate's jobs (cancel, retry) rather than only reading them.
    acts_on_jobs: bool = False

    @property
    def changes_cluster(self) -> bool:
        return self.group is Group.CHANGES

    @property
    def read_only(self) -> bool:
        """Changes nothing: needs no policy rule and no approval."""
        return not self.changes_cluster and not self.acts_on_jobs

    @property
    def all_options(self) -> tuple[OptionSpec, ...]:
        """The verb's own options, then scheduling options if it changes things, then -c."""
        scheduling = SCHEDULING_OPTIONS if self.changes_cluster else ()
        cluster = (CLUSTER_OPTION,) if self.name != "help" else ()
        return (*self.options, *scheduling, *cluster)
