"""Import rules that import-linter cannot express for the top-level module function_app.py."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_function_app_never_imports_the_sandbox() -> None:
    """The service and the simulated tenant stay apart, so a shared misunderstanding cannot hide."""
    assert "sandbox" not in _imported_roots(ROOT / "function_app.py")


def test_sandbox_never_imports_function_app() -> None:
    """The sandbox is written from Microsoft's documents, never from the service's code."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "sandbox").rglob("*.py")
        if {"function_app", "seatkeeper", "handlers"} & _imported_roots(path)
    ]
    assert offenders == []
