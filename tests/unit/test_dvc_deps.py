"""dvc.yaml lists, for each stage, exactly the source files its code is made of; stages import no stage.

A stage's code is the closure of ``housing.stages.<name>`` under ``housing.*`` imports (module level and
inside functions alike: a lazy import still runs). If dvc.yaml missed one, editing it would leave stale
outputs that ``dvc status`` calls up to date; this test names the stage and the file (``make dvc-deps``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

import housing.stages
from housing.dvc_deps import STAGE_PACKAGE, import_graph, module_closure, source_file, stage_sources
from housing.dvc_remote import dvc_executable

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
STAGES = list(DVC_YAML)


def test_the_stage_order_the_code_knows_is_dvc_yamls():
    assert tuple(STAGES) == housing.stages.STAGES


@pytest.mark.parametrize("stage", STAGES)
def test_cmd_runs_the_stage_module_named_after_the_stage(stage):
    assert DVC_YAML[stage]["cmd"] == f"python -m {STAGE_PACKAGE}.{stage}"
    assert source_file(f"{STAGE_PACKAGE}.{stage}", SRC).is_file()


@pytest.mark.parametrize("stage", STAGES)
def test_deps_list_exactly_the_stages_source_files(stage):
    listed = {d for d in DVC_YAML[stage]["deps"] if d.startswith("src/")}
    expected = {p.relative_to(ROOT).as_posix() for p in stage_sources(stage, SRC)}
    assert not expected - listed, f"dvc.yaml stage {stage!r} misses {sorted(expected - listed)}"
    assert not listed - expected, (
        f"dvc.yaml stage {stage!r} lists files it does not run: {sorted(listed - expected)}"
    )


def test_no_stage_imports_another_and_the_package_has_no_cycles():
    graph = import_graph(SRC)
    for stage in STAGES:
        module = f"{STAGE_PACKAGE}.{stage}"
        others = {m for m in module_closure(module, graph) if m.startswith(f"{STAGE_PACKAGE}.")} - {module}
        assert not others, f"{module} imports other stages: {sorted(others)}"
    cycle = _find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_the_closure_follows_imports_inside_functions(tmp_path):
    package = tmp_path / "src" / "housing"
    (package / "stages").mkdir(parents=True)
    for name in ("__init__", "config", "features", "unused"):
        (package / f"{name}.py").write_text("")
    (package / "stages" / "__init__.py").write_text("from housing import config\n")
    (package / "stages" / "evaluate.py").write_text("def run():\n    from housing.features import REGIONS\n")
    files = {p.relative_to(tmp_path).as_posix() for p in stage_sources("evaluate", tmp_path / "src")}
    assert files == {
        "src/housing/__init__.py",
        "src/housing/config.py",
        "src/housing/features.py",
        "src/housing/stages/__init__.py",
        "src/housing/stages/evaluate.py",
    }


def test_editing_a_region_definition_makes_evaluate_stale(tmp_path):
    """The defect this guards against: evaluate's slices use features.py's regions, and dvc.yaml did not
    list features.py for evaluate, so a new region left stale reports that `dvc status` called current."""
    dvc = dvc_executable()
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True, timeout=120)
    features = repo / "src" / "housing" / "features.py"
    features.write_text(features.read_text().replace("LOS_ANGELES = (34.0522,", "LOS_ANGELES = (34.05,"))
    status = subprocess.run(
        [dvc, "status", "evaluate", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert '"src/housing/features.py": "modified"' in status.replace(" ", "").replace('":"', '": "')


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None
