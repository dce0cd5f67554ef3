"""Which source files each pipeline stage runs: the closure of ``housing.stages.<name>`` under its imports.

``dvc.yaml`` must list exactly these files in the stage's ``deps`` (``tests/unit/test_dvc_deps.py`` checks
it), so that editing any of them reruns the stage. ``python -m housing.dvc_deps`` (``make dvc-deps``) prints
them per stage, ready to paste. Standard library only: it reads the sources, it does not import them.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "housing"
STAGE_PACKAGE = f"{PACKAGE}.stages"
SRC = Path(__file__).resolve().parents[1]


def source_file(module: str, src: Path = SRC) -> Path:
    """The file of ``module`` under ``src`` (a package's ``__init__.py``)."""
    base = src.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _modules(src: Path) -> set[str]:
    found = set()
    for path in (src / PACKAGE).rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """``module -> modules of the package it imports`` (anywhere in the file, functions included), plus each
    module's parent packages (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``)."""
    modules = _modules(src)
    graph: dict[str, set[str]] = {}
    for module in modules:
        edges = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        tree = ast.parse(source_file(module, src).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] != PACKAGE:
                    continue
                edges.add(node.module)
                # `from housing import paths`: a submodule, not an attribute
                edges |= {
                    f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules
                }
        graph[module] = {
            target
            for edge in edges
            for target in [".".join(edge.split(".")[: i + 1]) for i in range(edge.count(".") + 1)]
            if target in modules and target != module
        }
    return graph


def module_closure(module: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph.get(current, ()))
    return seen


def stage_sources(stage: str, src: Path = SRC) -> list[Path]:
    """The source files ``python -m housing.stages.<stage>`` runs, sorted."""
    closure = module_closure(f"{STAGE_PACKAGE}.{stage}", import_graph(src))
    return sorted(source_file(module, src) for module in closure)


def main() -> None:
    import yaml

    stages = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
    for stage in stages:
        print(f"{stage}:")
        for path in stage_sources(stage):
            print(f"      - {path.relative_to(SRC.parent).as_posix()}")


if __name__ == "__main__":
    sys.exit(main())
