"""What a typo in kubegate.yaml does, found before anything starts: references between
sections (verbs, roles, clusters) and windows that cannot work.

These checks read the raw YAML, so they run even when the schema is broken elsewhere and
every problem is reported at once; a value of the wrong type is left to the schema's message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from approvals import SLACK_GROUP_ID, SLACK_USER_ID
from bot.access import BUTTON_VERBS, default_approvals, reads_only
from commands import VERBS, format_duration
from playbooks.inventory import duration

LONGEST_MAINTENANCE_WINDOW = timedelta(days=7)  # longer, and a weekly slot overlaps the next


def config_problems(raw: dict[str, Any]) -> list[str]:
    """Every cross-reference and window problem, each with its path."""
    clusters = _names(raw.get("clusters"))
    roles = raw.get("roles")
    known_roles = set(roles) if isinstance(roles, dict) else None
    return [
        *_duplicate_clusters(clusters),
        *_role_members(roles),
        *_policy(raw.get("policy"), known_roles=known_roles, clusters=set(clusters)),
        *_windows(raw.get("windows")),
        *_maintenance_windows(raw.get("maintenance_windows")),
        *_freezes(raw.get("freezes"), clusters=set(clusters)),
    ]


def nearest(word: str, choices: Iterable[str]) -> str:
    """ " — did you mean `drain`?" for a near miss; nothing when no choice is near."""
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" — did you mean `{found[0]}`?" if found else ""


def _names(clusters: Any) -> list[str]:
    if not isinstance(clusters, list):
        return []
    return [c["name"] for c in clusters if isinstance(c, dict) and isinstance(c.get("name"), str)]


def _duplicate_clusters(names: list[str]) -> list[str]:
    return [
        f"clusters: cluster '{name}' is defined more than once"
        for name in sorted({n for n in names if names.count(n) > 1})
    ]


def _role_members(roles: Any) -> list[str]:
    problems = []
    for role, members in (roles or {}).items() if isinstance(roles, dict) else ():
        for index, member in enumerate(members if isinstance(members, list) else []):
            if isinstance(member, str) and not (
                SLACK_USER_ID.match(member) or SLACK_GROUP_ID.match(member)
            ):
                problems.append(
                    f"roles.{role}[{index}]: '{member}' is not a Slack user ID (U…/W…) "
                    "or user-group ID (S…); display names are not accepted"
                )
    return problems


def _policy(policy: Any, *, known_roles: set[str] | None, clusters: set[str]) -> list[str]:
    problems = []
    for index, rule in enumerate(policy if isinstance(policy, list) else []):
        if not isinstance(rule, dict):
            continue
        where = f"policy[{index}]"
        policy_verbs = [*VERBS, *BUTTON_VERBS]
        for position, verb in _strings(rule.get("verbs")):
            if verb not in policy_verbs:
                problems.append(
                    f"{where}.verbs[{position}]: unknown verb `{verb}`{nearest(verb, policy_verbs)}"
                )
        problems += _reads_and_silences(rule, where=where)
        for field in ("requesters", "approvers", "break_glass"):
            for position, role in _strings(rule.get(field)):
                if known_roles is not None and role != "*" and role not in known_roles:
                    problems.append(
                        f"{where}.{field}[{position}]: unknown role `{role}`"
                        f"{nearest(role, known_roles)}"
                    )
        for position, cluster in _strings(rule.get("clusters")):
            if cluster not in clusters:
                problems.append(
                    f"{where}.clusters[{position}]: unknown cluster `{cluster}`"
                    f"{nearest(cluster, clusters)}"
                )
        if not rule.get("approvers"):
            problems += _no_approvers(rule, where=where)
    return problems


def _reads_and_silences(rule: dict[str, Any], *, where: str) -> list[str]:
    """Read verbs are answered at once (never approved) and `longest:` bounds only silences:
    a rule that mixes them up would not do what it reads like."""
    verbs = [verb for _, verb in _strings(rule.get("verbs"))]
    reads = [verb for verb in verbs if reads_only(verb)]
    problems = []
    approvals = rule.get("approvals")
    if reads and ((isinstance(approvals, int) and approvals > 0) or rule.get("break_glass")):
        problems.append(
            f"{where}: {', '.join(f'`{v}`' for v in reads)} only read and are answered at once, "
            "never approved: give read verbs a rule of their own with only `requesters:` "
            '(["*"] opens them to everyone)'
        )
    if rule.get("longest") is not None and "silence" not in verbs:
        problems.append(f"{where}.longest: only a rule for `silence` has a longest duration")
    return problems


def _no_approvers(rule: dict[str, Any], *, where: str) -> list[str]:
    """A rule that needs approvals (its own `approvals:`, or its verbs' defaults) but names
    nobody who may give them would refuse every request it governs."""
    approvals = rule.get("approvals")
    if isinstance(approvals, int) and approvals > 0:
        return [f"{where}.approvers: {approvals} approval(s) needed but no approver role"]
    if approvals is not None:
        return []
    known = [*VERBS, *BUTTON_VERBS]
    defaults = {v: default_approvals(v) for _, v in _strings(rule.get("verbs")) if v in known}
    needing = [f"`{verb}` {n}" for verb, n in defaults.items() if n > 0]
    if not needing:
        return []
    return [
        f"{where}.approvers: no approver role, but without `approvals:` each verb needs its "
        f"default number of approvals ({', '.join(needing)})"
    ]


def _strings(values: Any) -> list[tuple[int, str]]:
    if not isinstance(values, list):
        return []
    return [(index, value) for index, value in enumerate(values) if isinstance(value, str)]


def _windows(windows: Any) -> list[str]:
    problems = []
    for name in ("approval", "execution"):
        length = _duration(windows.get(name)) if isinstance(windows, dict) else None
        if length is not None and length <= timedelta(0):
            problems.append(f"windows.{name}: must be longer than zero")
    return problems


def _maintenance_windows(windows: Any) -> list[str]:
    problems = []
    for name, window in windows.items() if isinstance(windows, dict) else ():
        length = _duration(window.get("duration")) if isinstance(window, dict) else None
        if length is None:
            continue
        if length <= timedelta(0):
            problems.append(f"maintenance_windows.{name}.duration: must be longer than zero")
        elif length > LONGEST_MAINTENANCE_WINDOW:
            problems.append(
                f"maintenance_windows.{name}.duration: {format_duration(length)} is longer than a week; "
                "a weekly slot would overlap the next"
            )
    return problems


class _FreezeTimes(BaseModel):
    start: datetime
    end: datetime


def _freezes(freezes: Any, *, clusters: set[str]) -> list[str]:
    problems = []
    for index, freeze in enumerate(freezes if isinstance(freezes, list) else []):
        if not isinstance(freeze, dict):
            continue
        where = f"freezes[{index}]"
        for position, cluster in _strings(freeze.get("clusters")):
            if cluster not in clusters:
                problems.append(
                    f"{where}.clusters[{position}]: unknown cluster `{cluster}`"
                    f"{nearest(cluster, clusters)}"
                )
        try:
            times = _FreezeTimes.model_validate(freeze, strict=False)
        except ValidationError:
            continue  # the schema names the bad time
        if _utc(times.end) <= _utc(times.start):
            problems.append(f"{where}.end: {times.end} is not after its start {times.start}")
    return problems


def _duration(value: Any) -> timedelta | None:
    """The duration a raw value means; None when it is absent or not one (the schema says so)."""
    if value is None:
        return None
    try:
        return duration(value)
    except ValueError:
        return None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def unique(problems: Sequence[str]) -> list[str]:
    """Problems in order, each once (a check and the schema may see the same thing)."""
    return list(dict.fromkeys(problems))
