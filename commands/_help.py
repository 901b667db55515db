"""`help_text`: the `/kube help` overview and each verb's page, written from the verb specs."""

from __future__ import annotations

from commands._registry import VERB_SPECS, find_verb
from commands._spec import CLUSTER_OPTION, Group, VerbSpec


def help_text(verb: str | None = None) -> str:
    """The overview, or one verb's page; an unknown verb raises CommandError with the nearest."""
    if verb is None:
        return _overview()
    return _verb_page(find_verb(verb))


def _overview() -> str:
    lines = ["*kubegate*: Kubernetes operations from Slack, planned, approved and audited."]
    for group in Group:
        lines.append("")
        lines.append(f"*{group.value}*")
        lines.extend(
            f"• `/kube {spec.synopsis}`: {spec.summary}"
            for spec in VERB_SPECS
            if spec.group is group
        )
    lines.append("")
    lines.append(
        'Anything that changes the cluster also takes --dry-run, --at "YYYY-MM-DD HH:MM" (UTC) '
        f"or --window NAME. {CLUSTER_OPTION.label} picks the cluster."
    )
    lines.append("Type `/kube help <verb>` for a verb's options and examples.")
    return "\n".join(lines)


def _verb_page(spec: VerbSpec) -> str:
    lines = [f"*/kube {spec.name}*: {spec.summary}", "Usage:"]
    lines.extend(f"  `{usage}`" for usage in spec.usage.splitlines())
    if spec.all_options:
        lines.append("Options:")
        for option in spec.all_options:
            default = f" (default: {option.default})" if option.default else ""
            required = " (required)" if option.required else ""
            lines.append(f"  `{option.label}`: {option.meaning}{required}{default}")
    lines.extend(spec.notes)
    lines.append("Examples:")
    lines.extend(f"  `{example}`" for example in spec.examples)
    lines.append(_effect(spec))
    return "\n".join(lines)


def _effect(spec: VerbSpec) -> str:
    """What running the verb does to the world, and how many approvals it needs by default."""
    if spec.changes_cluster:
        return (
            f"Changes the cluster ({spec.reaches}). "
            f"Needs approval by default: {spec.default_approvals}."
        )
    if spec.acts_on_jobs:
        return (
            f"Acts on a job: {spec.reaches}. "
            f"Approvals: as your team's policy sets for `{spec.name}`."
        )
    reads = f" ({spec.reaches})" if spec.reaches else ""
    return f"Read-only{reads}: changes nothing, needs no approval."
