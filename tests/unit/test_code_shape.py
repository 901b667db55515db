"""The style guide's sizes, measured as the formatter lays the code out: no function over 60
lines and no module over 400 in bot/, commands/, approvals/ and playbooks/ (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "commands", "approvals", "playbooks")
LONGEST_FUNCTION = 60
LONGEST_MODULE = 400


def modules() -> list[Path]:
    # rglob: a subpackage added later is measured too, not silently skipped.
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in modules()
        if (lines := len(path.read_text().splitlines())) > LONGEST_MODULE
    }
    assert too_long == {}


def test_no_function_is_over_60_lines() -> None:
    too_long = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LONGEST_FUNCTION:
                    too_long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert too_long == {}
