"""serving/ imports only what the serving image carries: its own modules and a few shared base modules."""

from __future__ import annotations

import ast
from pathlib import Path

import housing.serving

SERVING = Path(housing.serving.__file__).parent
# The package modules serving may use (issue 10's import rules); anything else is the training stack's.
ALLOWED = {
    "housing.strict",
    "housing.variants",
    "housing.errors",
    "housing.paths",
    "housing.artifact",
    "housing.inference_log",
}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "housing.serving":
                found.update(f"housing.serving.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "housing"}


def test_serving_imports_only_itself_and_the_allowed_base_modules():
    offending = {
        f"{path.name}: {name}"
        for path in SERVING.glob("*.py")
        for name in imported_modules(path)
        if not name.startswith("housing.serving") and name not in ALLOWED
    }
    assert offending == set()
    assert imported_modules(SERVING / "router.py") >= {"housing.variants"}  # the parser sees imports
