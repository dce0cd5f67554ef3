"""The import rules of docs/architecture.md, checked on the package's real import graph.

Layers, bottom up: core (no project imports but core) -> pipeline helpers -> stages (no stage imports
another) -> applications (CLI, report, experiments, deploy, monitoring, infra, kfp). serving/ sits beside the
pipeline and imports only the core modules its image carries (no training stack).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from housing.dvc_deps import import_graph

SRC = Path(__file__).resolve().parents[2] / "src"
GRAPH = {m: edges - {"housing"} for m, edges in import_graph(SRC).items() if m != "housing"}

CORE = {
    "housing.errors", "housing.strict", "housing.variants", "housing.paths", "housing.config",
    "housing.artifact", "housing.timings", "housing.inference_log", "housing.results",
}  # fmt: skip
HELPERS = {
    "housing.frames", "housing.ingest", "housing.checks", "housing.features", "housing.metrics",
    "housing.modelio", "housing.logwindow", "housing.registry", "housing.simulate", "housing.dvc_remote",
    "housing.dvc_deps", "housing.data_setup", "housing.server_process",
}  # fmt: skip
SERVING_MAY_IMPORT = {
    "housing.errors", "housing.strict", "housing.variants", "housing.paths", "housing.artifact",
    "housing.inference_log",
}  # fmt: skip
APP_PACKAGES = ("housing.experiments", "housing.deploy", "housing.monitoring", "housing.infra", "housing.kfp")


def layer(module: str) -> str:
    if module in CORE:
        return "core"
    if module in HELPERS:
        return "helpers"
    if module == "housing.stages" or module.startswith("housing.stages."):
        return "stages"
    if module == "housing.serving" or module.startswith("housing.serving."):
        return "serving"
    if module in ("housing.cli", "housing.report") or module.startswith(APP_PACKAGES):
        return "apps"
    return "unassigned"


ALLOWED = {
    "core": {"core"},
    "helpers": {"core", "helpers"},
    "stages": {"core", "helpers", "stages"},
    "serving": {"serving"},  # plus SERVING_MAY_IMPORT
    "apps": {"core", "helpers", "stages", "serving", "apps"},
}


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import edge the layers forbid, as ``importer -> imported``."""
    found = []
    for module, imports in graph.items():
        own = layer(module)
        for imported in sorted(imports):
            ok = layer(imported) in ALLOWED.get(own, set())
            ok = ok or (own == "serving" and imported in SERVING_MAY_IMPORT)
            ok = ok and imported != "housing.cli"
            same_package_stage = imported.startswith("housing.stages.") and module.startswith(
                "housing.stages."
            )
            if not ok or same_package_stage:
                found.append(f"{module} ({own}) -> {imported} ({layer(imported)})")
    return found


def test_every_module_has_a_layer():
    unassigned = [m for m in GRAPH if layer(m) == "unassigned"]
    assert unassigned == [], "add each new module to a layer, here and in docs/architecture.md"


def test_the_package_follows_the_layers():
    assert violations(GRAPH) == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("housing.stages.train", "housing.stages.evaluate"),  # a stage importing another
        ("housing.stages.train", "housing.experiments.loop"),  # a stage importing an application
        ("housing.serving.model", "housing.modelio"),  # serving importing the training stack
        ("housing.frames", "housing.stages.split"),  # a helper importing a stage
        ("housing.config", "housing.frames"),  # core importing a helper
        ("housing.experiments.loop", "housing.cli"),  # anything importing the CLI
    ],
)
def test_each_kind_of_violation_is_caught(importer, imported):
    assert violations({importer: {imported}}) != []
