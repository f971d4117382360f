"""The layout tells the architecture (issue 14): imports point one way, modules and classes stay small.

Every import counts: at the top, inside functions, and under ``TYPE_CHECKING`` -- a circle drawn only for
the type checker is still a circle a reader has to untangle.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

from tests.helpers import REPO

PACKAGE = REPO / "parallux"
MODULE_LIMIT = 400      # lines; the launcher is exempt: one self-contained file, sent verbatim to hosts
METHOD_LIMIT = 20       # methods of one class
TEST_DOUBLE_LIMIT = 80  # lines of code of the plan transport, the engine's test double


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module in known and module != name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_layout_has_no_import_circle() -> None:
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert graph["parallux._pool"] >= {"parallux._engine._seat", "parallux._runner"}  # the parser sees imports
    assert circles(graph) == []


def test_layout_import_circle_check_can_fail() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layout_modules_stay_small() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert sizes["parallux._launcher"] > MODULE_LIMIT  # (the one exception)
    assert {name: size for name, size in sizes.items()
            if size > MODULE_LIMIT and name != "parallux._launcher"} == {}


def test_layout_classes_stay_small() -> None:
    big = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
                if len(methods) > METHOD_LIMIT and name != "parallux._launcher":
                    big[f"{name}.{node.name}"] = len(methods)
    assert big == {}


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = {node.body[0].lineno for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}
    doc_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and node.lineno in docstrings:
            doc_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER) and token.start[0] not in doc_lines:
            lines.add(token.start[0])
    return len(lines)


def test_layout_the_engines_test_double_is_small() -> None:
    assert code_lines(PACKAGE / "_transports" / "_plan.py") <= TEST_DOUBLE_LIMIT
