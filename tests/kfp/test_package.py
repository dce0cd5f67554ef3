"""Reading a compiled package and building a run's arguments (PyYAML only: no kfp needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kfp_support import COMMITTED_PACKAGE

from housing.errors import ConfigError
from housing.kfp.package import KfpError, read_package, require_built_image, run_arguments
from housing.kfp.params import STAGE_SECTIONS, section_defaults
from housing.kfp.pipeline import IMAGE_PLACEHOLDER

URIS = {
    "raw_data_uri": "/data/raw.csv",
    "production_window_uri": "/data/window.csv",
    "mlflow_tracking_uri": "x",
}


def test_committed_package_declares_the_pipeline(params):
    package = read_package(COMMITTED_PACKAGE)
    assert package.name == "housing"
    assert package.images == (IMAGE_PLACEHOLDER,)
    assert package.required == ("mlflow_tracking_uri", "production_window_uri", "raw_data_uri")
    # KFP stores struct numbers as doubles; validated, they are params.yaml's values.
    arguments = run_arguments(package, force=False, **URIS)
    assert {key: arguments[key] for key in STAGE_SECTIONS} == section_defaults(params)


def test_overrides_are_validated_against_the_packages_defaults():
    package = read_package(COMMITTED_PACKAGE)
    arguments = run_arguments(package, force=True, overrides=["drift.threshold=0.5"], **URIS)
    assert arguments["drift"]["threshold"] == 0.5
    assert arguments["force"] is True
    with pytest.raises(
        ConfigError, match=r"^--set: drift\.threshold: Input should be less than or equal to 1$"
    ):
        run_arguments(package, force=False, overrides=["drift.threshold=2"], **URIS)


def test_placeholder_image_is_not_for_a_cluster():
    with pytest.raises(KfpError, match=r"its components run the placeholder image"):
        require_built_image(read_package(COMMITTED_PACKAGE))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"no such pipeline package \(compile one: housing kfp compile\)"),
        ("a: [", "not valid YAML"),
        ("components: {}\n", r"not a KFP v2 pipeline package"),
    ],
)
def test_unusable_packages_fail_naming_the_file(tmp_path: Path, content: str | None, message: str):
    path = tmp_path / "pipeline.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KfpError, match=rf"^{path}: {message}"):
        read_package(path)


def test_another_pipeline_is_refused(tmp_path: Path):
    document = yaml.safe_load(COMMITTED_PACKAGE.read_text())
    del document["root"]["inputDefinitions"]["parameters"]["train"]
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(KfpError, match=r"lacks the section parameter\(s\) \['train'\]: not this project's"):
        read_package(path)
