"""The package layout: packages follow the pipeline, none imports another in a circle, nothing
below the CLI imports the CLI, and the top level stays small."""

from __future__ import annotations

import ast
from pathlib import Path

import directnas

SRC = Path(directnas.__file__).parent


def _unit(module: str) -> str:
    """The package (or top-level module) a dotted ``directnas.x.y`` name belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "directnas"


def package_imports() -> dict[str, set[str]]:
    """unit -> the units it imports, from every import statement (function-level ones too)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        me = _unit(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
        if me == "directnas":
            continue  # the package's face re-exports the public calls
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names]
                                          if node.module == "directnas" else [])
            for n in names:
                unit = _unit(n)
                is_part = (SRC / unit).is_dir() or (SRC / f"{unit}.py").is_file()
                if n.startswith("directnas.") and is_part and unit != me:
                    graph.setdefault(me, set()).add(unit)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (found := visit(v)):
                return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (found := visit(u)):
            return found
    return None


def test_no_import_cycle_between_packages() -> None:
    assert _cycle(package_imports()) is None, f"import cycle: {' -> '.join(_cycle(package_imports()) or [])}"


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_nothing_below_the_cli_imports_the_cli() -> None:
    users = sorted(u for u, deps in package_imports().items()
                   if "cli" in deps and u not in ("cli", "__main__"))
    assert users == []


def test_at_most_six_modules_at_the_top_level() -> None:
    loose = sorted(p.name for p in SRC.glob("*.py"))
    assert len(loose) <= 6, loose


def test_cli_modules_are_at_most_80_lines() -> None:
    """Each command is flags -> config -> one library call -> printed paths."""
    long = {p.name: n for p in (SRC / "cli").glob("*.py")
            if (n := len(p.read_text().splitlines())) > 80}
    assert long == {}


def test_no_function_over_80_lines() -> None:
    """Every function and method of the package fits on a screen (80 lines, decorators and
    docstring included)."""
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - first + 1 > 80:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} "
                                f"({node.end_lineno - first + 1} lines)")
    assert long == []
