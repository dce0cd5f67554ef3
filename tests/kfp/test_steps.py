"""What the components execute (housing.kfp.steps), with stand-in artifacts: no kfp needed."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from housing.kfp import steps
from housing.kfp.params import section_defaults


@dataclass
class FakeArtifact:
    """What a step uses of a kfp artifact: a local path and a metadata dict."""

    path: str
    metadata: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def sections(params) -> dict[str, Any]:
    return section_defaults(params)


@pytest.fixture
def raw_sample(tmp_path: Path, housing_frame) -> FakeArtifact:
    """2 000 real rows where the importer would leave the raw data set."""
    path = tmp_path / "importer" / "raw.csv"
    path.parent.mkdir()
    housing_frame.sample(2000, random_state=3).to_csv(path, index=False)
    return FakeArtifact(str(path))


def test_validate_step_runs_the_stage_in_a_scratch_directory(tmp_path: Path, sections, raw_sample):
    validation = FakeArtifact(str(tmp_path / "outputs" / "validation"))
    (tmp_path / "outputs").mkdir()
    before = Path.cwd()
    steps.validate(sections, raw_sample, validation)
    assert Path.cwd() == before
    report = json.loads(Path(validation.path).read_text())
    assert report["passed"] is True
    assert report["source"] == "data/raw/california_housing.csv"  # laid out where params.yaml says
    assert validation.metadata == {"rows": 2000, "checks": len(report["checks"]), "sha256": report["sha256"]}


def test_a_stage_error_ends_the_step_with_one_line(tmp_path: Path, sections, raw_sample, housing_frame):
    frame = housing_frame.sample(2000, random_state=3)
    frame.iloc[0, frame.columns.get_loc("Latitude")] = 55.0
    frame.to_csv(raw_sample.path, index=False)
    before = Path.cwd()
    with pytest.raises(SystemExit) as info:
        steps.validate(sections, raw_sample, FakeArtifact(str(tmp_path / "validation")))
    assert str(info.value.code).startswith(
        "error: data/raw/california_housing.csv failed validation: "
        "Latitude: range rule '32.4 <= value <= 42.1' broken by 1 row(s)"
    )
    assert "\n" not in str(info.value.code)
    assert Path.cwd() == before
    assert not (tmp_path / "validation").exists()


def test_bad_params_end_the_step_naming_the_key(tmp_path: Path, sections, raw_sample):
    sections["validate"]["min_rows"] = 0
    with pytest.raises(SystemExit, match=r"^error: params: validate\.min_rows: Input should be greater than"):
        steps.validate(sections, raw_sample, FakeArtifact(str(tmp_path / "validation")))


def test_config_step_validates_the_pipeline_parameters(sections):
    sections["train"]["hgb"]["max_iter"] = 1000.0  # as KFP hands struct numbers over
    resolved = steps.resolve_params(sections)
    assert resolved["train"]["hgb"]["max_iter"] == 1000
    sections["drift"]["threshold"] = 1.5
    with pytest.raises(
        SystemExit, match=r"^error: pipeline parameters: drift\.threshold: Input should be less"
    ):
        steps.resolve_params(sections)


def test_copy_path_copies_files_and_trees(tmp_path: Path):
    tree = tmp_path / "models"
    (tree / "sub").mkdir(parents=True)
    (tree / "model.onnx").write_bytes(b"onnx")
    (tree / "sub" / "x.json").write_text("{}")
    steps.copy_path(tree, tmp_path / "out" / "models")
    steps.copy_path(tree / "model.onnx", tmp_path / "single" / "model.onnx")
    assert (tmp_path / "out" / "models" / "sub" / "x.json").read_text() == "{}"
    assert (tmp_path / "single" / "model.onnx").read_bytes() == b"onnx"


def test_environment_is_restored(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(steps.TRACKING_URI_ENV, "sqlite:///outer.db")
    with steps.environment(steps.TRACKING_URI_ENV, "http://mlflow:5000"):
        assert os.environ[steps.TRACKING_URI_ENV] == "http://mlflow:5000"
    assert os.environ[steps.TRACKING_URI_ENV] == "sqlite:///outer.db"
    monkeypatch.delenv(steps.TRACKING_URI_ENV)
    with steps.environment(steps.TRACKING_URI_ENV, "http://mlflow:5000"):
        pass
    assert steps.TRACKING_URI_ENV not in os.environ
