"""Label and field selectors as the apiserver parses them, as pure predicates over objects."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from testbed.apiserver.errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_TERM = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\((.*)\)\s*$")
_EQUALITY_TERM = re.compile(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(\S*)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside `in (a,b)` parentheses."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def label_selector(selector: str | None) -> Predicate:
    if not selector:
        return lambda _obj: True
    checks = [_label_term(term) for term in _split_terms(selector)]

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return matches


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    if match := _SET_TERM.match(term):
        key, operator = match.group(1), match.group(2)
        values = {v.strip() for v in match.group(3).split(",") if v.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY_TERM.match(term):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[\w./-]+", term):
        return lambda labels: term in labels
    raise bad_request(f"unable to parse requirement: {term!r}")


def field_value(obj: dict[str, Any], path: str) -> str:
    """A dotted path rendered as the apiserver compares it: missing is "", bools lowercase."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""
        node = node[part]
    if isinstance(node, bool):
        return "true" if node else "false"
    return "" if node is None else str(node)


def field_selector(selector: str | None) -> Predicate:
    if not selector:
        return lambda _obj: True
    terms = []
    for term in _split_terms(selector):
        match = _EQUALITY_TERM.match(term)
        if match is None:
            raise bad_request(f"invalid field selector: {term!r}")
        terms.append(match.groups())

    def matches(obj: dict[str, Any]) -> bool:
        for path, operator, value in terms:
            equal = field_value(obj, path) == value
            if equal == (operator == "!="):
                return False
        return True

    return matches


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """A `metav1.LabelSelector` object (matchLabels, matchExpressions) against labels.

    An empty or missing selector matches everything, as for ReplicaSets; callers for which it
    must match nothing (PodDisruptionBudgets) check `selector_is_empty` first.
    """
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = set(expression.get("values") or [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def selector_is_empty(selector: dict[str, Any] | None) -> bool:
    selector = selector or {}
    return not selector.get("matchLabels") and not selector.get("matchExpressions")
