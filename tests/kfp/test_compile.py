"""`housing kfp compile`: a reproducible IR that kfp loads back, built from the stage components."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kfp_support import COMMITTED_PACKAGE, ROOT, require_kfp

from housing.kfp.params import STAGE_SECTIONS
from housing.kfp.pipeline import IMAGE_PLACEHOLDER, RUN_PARAMETERS
from housing.stages import STAGES

REGENERATE = (
    "make kfp-compile (housing kfp compile in build/tools/kfp), then commit kfp/housing_pipeline.yaml"
)


def _compile_in_new_process(output: Path, *args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter per compile: protobuf's map order changes between processes, not within one."""
    return subprocess.run(
        [sys.executable, "-m", "housing.cli", "kfp", "compile", "--output", str(output), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compiling_twice_gives_the_same_bytes(tmp_path: Path, compiled: Path):
    again = tmp_path / "again.yaml"
    done = _compile_in_new_process(again)
    assert done.returncode == 0, done.stderr
    assert again.read_bytes() == compiled.read_bytes()


def test_committed_ir_is_a_fresh_compile(compiled: Path):
    assert COMMITTED_PACKAGE.exists(), f"kfp/housing_pipeline.yaml is missing: {REGENERATE}"
    assert COMMITTED_PACKAGE.read_bytes() == compiled.read_bytes(), (
        f"kfp/housing_pipeline.yaml differs from what the code and params.yaml compile to: {REGENERATE}"
    )


def test_ir_loads_back_with_kfps_loader(compiled: Path):
    require_kfp()
    from kfp import components

    pipeline = components.load_component_from_file(str(compiled))
    assert pipeline.name == "housing"
    assert set(pipeline.component_spec.inputs) == {*RUN_PARAMETERS, *STAGE_SECTIONS}
    assert pipeline.component_spec.inputs["force"].default is False
    assert pipeline.component_spec.inputs["train"].default["hgb"]["learning_rate"] == 0.05


def test_graph_has_a_component_per_stage_with_typed_artifacts(compiled: Path):
    spec = yaml.safe_load(compiled.read_text())
    components = spec["components"]
    for stage in STAGES:
        assert f"comp-{stage}" in components, stage
    outputs = {
        stage: {
            name: artifact["artifactType"]["schemaTitle"]
            for name, artifact in components[f"comp-{stage}"]["outputDefinitions"]
            .get("artifacts", {})
            .items()
        }
        for stage in STAGES
    }
    assert outputs["split"] == dict.fromkeys(("train_split", "test_split", "reference"), "system.Dataset")
    assert outputs["train"] == {"model": "system.Model"}
    assert outputs["export"] == {"onnx_model": "system.Model"}
    assert outputs["evaluate"]["metrics"] == "system.Metrics"
    assert outputs["drift"] == {
        "drift_metrics": "system.Metrics",
        "drift_report": "system.HTML",
        "drift_json": "system.Artifact",
    }
    images = {
        executor["container"]["image"]
        for executor in spec["deploymentSpec"]["executors"].values()
        if "container" in executor
    }
    assert images == {IMAGE_PLACEHOLDER}


def test_training_runs_only_in_the_retrain_branch(compiled: Path):
    spec = yaml.safe_load(compiled.read_text())
    root_tasks = spec["root"]["dag"]["tasks"]
    assert {"config", "importer", "importer-2", "validate", "split", "drift", "retrain-decision"} <= set(
        root_tasks
    )
    branch = root_tasks["condition-1"]
    assert "retrain-decision" in branch["dependentTasks"]
    condition = branch["triggerPolicy"]["condition"]
    assert condition == "inputs.parameter_values['pipelinechannel--retrain-decision-Output'] == true"
    inside = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inside) == {"train", "export", "evaluate", "register"}
    assert inside["register"]["dependentTasks"] == ["evaluate", "export", "train"]
    assert inside["register"]["cachingOptions"] == {}  # never served from KFP's cache
    assert root_tasks["drift"]["dependentTasks"] == ["config", "importer-2", "split"]


def test_image_option_names_the_pushed_digest(tmp_path: Path):
    require_kfp()
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/housing-mlops@sha256:" + "a" * 64
    done = _compile_in_new_process(tmp_path / "cd.yaml", "--image", image)
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load((tmp_path / "cd.yaml").read_text())
    assert {
        e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e
    } == {image}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("train", "hgb", "learning_rate", 2.0),
            "train.hgb.learning_rate: Input should be less than or equal to 1",
        ),
        (("drift", "treshold", None, 0.3), "drift.treshold: unknown key"),
    ],
)
def test_bad_params_fail_compile_naming_the_key(tmp_path: Path, edit: tuple, message: str):
    document = yaml.safe_load((ROOT / "params.yaml").read_text())
    section, key, subkey, value = edit
    if subkey is None:
        document[section][key] = value
    else:
        document[section][key][subkey] = value
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(document))
    done = _compile_in_new_process(tmp_path / "never.yaml", "--params", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {bad}: {message}"
    assert not (tmp_path / "never.yaml").exists()
