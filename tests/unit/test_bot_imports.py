"""bot/ is wired in one place: no module of it imports one that (directly or not) imports it
back, even for type checking only, and no test reaches a service object through a cast."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"


def bot_imports(path: Path) -> set[str]:
    """The bot modules `path` imports, at any depth of the file (TYPE_CHECKING blocks too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("bot.")}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {path.stem: path for path in BOT.glob("*.py")}
    return {name: bot_imports(path) & set(modules) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, each as the path that closes it (depth-first, colours)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_no_bot_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    assert "service" in graph and graph["app"], "the graph was read"
    assert cycles(graph) == []


def test_the_cycle_finder_sees_a_circle_through_three_modules() -> None:
    graph = {"alerts": {"service"}, "service": {"readonly"}, "readonly": {"alerts"}}
    assert cycles(graph) == [["alerts", "service", "readonly", "alerts"]]


def test_no_test_casts_a_fake_to_a_service_type() -> None:
    cast_to_ours = re.compile(r"\bcast\(\s*\"?(Kubegate|CommandDesk|Clicks|Alerts)\b")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if cast_to_ours.search(path.read_text())
    ]
    assert offenders == []
