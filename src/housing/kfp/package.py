"""A compiled pipeline package (KFP IR YAML) as the run and submit commands see it, and their arguments.

Read with PyYAML, not kfp: what a package declares (its name, the images it runs, its parameters and their
defaults) is plain data, and these checks run where kfp is not installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from housing.errors import HousingError
from housing.kfp.params import STAGE_SECTIONS, Sections, apply_overrides
from housing.kfp.pipeline import IMAGE_PLACEHOLDER
from housing.strict import Strict

KFP_INSTALL_HINT = "`make kfp-venv` (build/tools/kfp), or pip install 'housing-mlops[kfp]'"


class KfpError(HousingError):
    """A Kubeflow command cannot go on: kfp missing, an unusable package, a failed run or submission."""


def require_kfp() -> None:
    """Fail in one line when this environment has no kfp (the ``kfp`` extra is not in ``dev``)."""
    try:
        found = importlib.util.find_spec("kfp.dsl") is not None  # a stray kfp/ directory is no kfp
    except ModuleNotFoundError:
        found = False
    if not found:
        raise KfpError(f"kfp is not installed in this environment: {KFP_INSTALL_HINT}")


class PipelinePackage(Strict):
    path: Path
    name: str
    images: tuple[str, ...]
    sections: Sections  # the params.yaml section parameters' defaults
    required: tuple[str, ...]  # parameters without a default


def read_package(path: Path) -> PipelinePackage:
    """Read a compiled pipeline; fail naming the file when it is missing or is not this project's pipeline."""
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise KfpError(f"{path}: no such pipeline package (compile one: housing kfp compile)") from None
    except yaml.YAMLError as exc:
        raise KfpError(f"{path}: not valid YAML: {exc}") from None
    try:
        parameters = document["root"]["inputDefinitions"]["parameters"]
        executors = document["deploymentSpec"]["executors"].values()
        name = document["pipelineInfo"]["name"]
    except (KeyError, TypeError):
        raise KfpError(
            f"{path}: not a KFP v2 pipeline package (no root/deploymentSpec/pipelineInfo)"
        ) from None
    missing = [section for section in STAGE_SECTIONS if section not in parameters]
    if missing:
        raise KfpError(
            f"{path}: pipeline {name!r} lacks the section parameter(s) {missing}: not this project's"
        )
    return PipelinePackage(
        path=path,
        name=name,
        images=tuple(sorted({e["container"]["image"] for e in executors if "container" in e})),
        sections={section: parameters[section].get("defaultValue", {}) for section in STAGE_SECTIONS},
        required=tuple(
            sorted(k for k, v in parameters.items() if "defaultValue" not in v and not v.get("isOptional"))
        ),
    )


def require_built_image(package: PipelinePackage) -> None:
    """A cluster cannot pull the placeholder image: CD compiles with the digest it pushed (docs/kfp.md)."""
    if IMAGE_PLACEHOLDER in package.images:
        raise KfpError(
            f"{package.path}: its components run the placeholder image {IMAGE_PLACEHOLDER!r}; compile with "
            "--image <registry>/<repository>@sha256:<digest> of the pushed train image"
        )


def run_arguments(
    package: PipelinePackage,
    *,
    raw_data_uri: str,
    production_window_uri: str,
    mlflow_tracking_uri: str,
    force: bool,
    overrides: Iterable[str] = (),
) -> dict[str, Any]:
    """A run's arguments: the package's section defaults with ``KEY=VALUE`` overrides, validated by
    ``housing.config.Params`` before anything is sent or started, and the runtime parameters."""
    return {
        "raw_data_uri": raw_data_uri,
        "production_window_uri": production_window_uri,
        "mlflow_tracking_uri": mlflow_tracking_uri,
        "force": force,
        **apply_overrides(package.sections, overrides),
    }
