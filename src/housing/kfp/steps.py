"""What each Kubeflow component executes in its container: the stage's own ``run(params)``, in a temporary
working directory laid out like the repository.

A step validates the params document (the ``config`` component's output) with ``housing.config.Params``,
copies its input artifacts to the paths the stage reads (``housing.paths``, ``params.data``), calls the stage
and copies what the stage wrote to its output artifacts, with a few facts as artifact metadata (shown by the
KFP UI). No stage logic lives here. A user error (bad params or data, a missed gate) ends the step with one
``error:`` line and a non-zero exit, like the CLI. Artifacts are duck-typed (``.path``, ``.metadata``):
kfp passes its own, tests pass stand-ins.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from housing import paths
from housing.config import Params
from housing.errors import HousingError
from housing.kfp.params import params_from_sections, section_defaults

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


class ArtifactLike(Protocol):
    """What a step uses of a KFP artifact (``kfp.dsl.Artifact`` and its subclasses)."""

    path: str
    metadata: dict[str, Any]


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A :class:`HousingError` (bad params or data, a missed gate) ends the step with one ``error:`` line, as
    the CLI does, and exit status 1 (any non-zero status fails the task); anything else is a bug and keeps its
    traceback."""
    try:
        yield
    except HousingError as exc:
        raise SystemExit(f"error: {exc}") from None


@contextmanager
def workspace(params: Mapping[str, Any]) -> Iterator[Params]:
    """Validate ``params``, chdir into a fresh, empty working directory and yield the params."""
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="housing-kfp-") as directory, one_line_errors():
        os.chdir(directory)
        try:
            yield params_from_sections(params, "params")
        finally:
            os.chdir(previous)


def copy_path(source: Path, target: Path) -> None:
    """Copy a file or a directory tree (an artifact is either)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)


def place(inputs: Mapping[Path, ArtifactLike]) -> None:
    """Copy input artifacts to the repository paths the stage reads (relative to the working directory)."""
    for target, artifact in inputs.items():
        copy_path(Path(artifact.path), target)


def publish(outputs: Mapping[Path, ArtifactLike]) -> None:
    """Copy what the stage wrote (repository paths, relative to the working directory) to output artifacts."""
    for source, artifact in outputs.items():
        copy_path(source, Path(artifact.path))


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the duration (the stage reads it), then restore it."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def log_metrics(metrics: ArtifactLike, values: Mapping[str, float | int]) -> None:
    """Numbers on a ``Metrics`` artifact (what the KFP UI charts and compares across runs)."""
    metrics.metadata.update({name: float(value) for name, value in values.items()})


# --- one function per component (components.py calls them inside the container) ----------------------------


def resolve_params(sections: Mapping[str, Any]) -> dict[str, Any]:
    """The ``config`` component: the pipeline's section parameters validated into one params document."""
    with one_line_errors():
        return section_defaults(params_from_sections(sections, "pipeline parameters"))


def validate(params: Mapping[str, Any], raw_data: ArtifactLike, validation: ArtifactLike) -> None:
    from housing.stages import validate as stage

    with workspace(params) as validated:
        place({validated.data.raw_path: raw_data})
        result = stage.run(validated)
        publish({paths.VALIDATION_JSON: validation})
    validation.metadata.update(rows=result.rows, checks=len(result.checks), sha256=result.sha256)


def split(
    params: Mapping[str, Any],
    raw_data: ArtifactLike,
    production_window: ArtifactLike,
    validation: ArtifactLike,
    train_split: ArtifactLike,
    test_split: ArtifactLike,
    reference: ArtifactLike,
) -> None:
    from housing.stages import split as stage

    with workspace(params) as validated:
        place(
            {
                validated.data.raw_path: raw_data,
                validated.data.production_window_path: production_window,
                paths.VALIDATION_JSON: validation,  # not read: dvc.yaml's order (validate first) as lineage
            }
        )
        result = stage.run(validated)
        publish({paths.TRAIN_CSV: train_split, paths.TEST_CSV: test_split, paths.REFERENCE_CSV: reference})
    train_split.metadata.update(rows=result.train_rows, production_rows=result.production_rows)
    test_split.metadata.update(rows=result.test_rows)
    reference.metadata.update(rows=result.reference_rows)


def train(params: Mapping[str, Any], train_split: ArtifactLike, model: ArtifactLike) -> None:
    from housing.stages import train as stage

    with workspace(params) as validated:
        place({paths.TRAIN_CSV: train_split})
        result = stage.run(validated)
        publish({paths.SKLEARN_MODEL: model})
    model.metadata.update(result.model_dump(mode="json", exclude_none=True), format="skops")


def export(
    params: Mapping[str, Any],
    model: ArtifactLike,
    train_split: ArtifactLike,
    test_split: ArtifactLike,
    onnx_model: ArtifactLike,
) -> None:
    from housing.stages import export as stage

    with workspace(params) as validated:
        place({paths.SKLEARN_MODEL: model, paths.TRAIN_CSV: train_split, paths.TEST_CSV: test_split})
        result = stage.run(validated)
        publish({paths.MODELS: onnx_model})
    onnx_model.metadata.update(result.model_dump(mode="json"), format="onnx")


# The evaluate stage's reports that travel on (to register, and to whoever reads the run's artifacts).
EVALUATION_REPORTS = (paths.METRICS_JSON, paths.SLICES_JSON, paths.PLOTS, paths.FIGURES)


def evaluate(
    params: Mapping[str, Any],
    onnx_model: ArtifactLike,
    test_split: ArtifactLike,
    metrics: ArtifactLike,
    evaluation: ArtifactLike,
) -> None:
    from housing.stages import evaluate as stage

    with workspace(params) as validated:
        place({paths.MODELS: onnx_model, paths.TEST_CSV: test_split})
        result = stage.run(validated)  # a missed gate raises: nothing downstream (register) runs
        publish({paths.METRICS_JSON: metrics})
        for report in EVALUATION_REPORTS:
            copy_path(report, Path(evaluation.path) / report.relative_to(paths.REPORTS))
    log_metrics(metrics, result.test)
    evaluation.metadata.update(gates={name: gate.passed for name, gate in result.gates.items()})


def drift(
    params: Mapping[str, Any],
    reference: ArtifactLike,
    production_window: ArtifactLike,
    drift_metrics: ArtifactLike,
    drift_report: ArtifactLike,
    drift_json: ArtifactLike,
) -> tuple[float, bool]:
    """Returns (drift_score, retrain_recommended), the stage's own verdict."""
    from housing.stages import drift as stage

    with workspace(params) as validated:
        place({paths.REFERENCE_CSV: reference, validated.data.production_window_path: production_window})
        result = stage.run(validated)
        publish({paths.DRIFT_HTML: drift_report, paths.DRIFT_JSON: drift_json})
    log_metrics(
        drift_metrics,
        {
            "drift_score": result.drift_score,
            "threshold": result.threshold,
            "drifted_features": len(result.drifted_features),
            "n_current": result.n_current,
        },
    )
    drift_json.metadata.update(drifted_features=result.drifted_features)
    return result.drift_score, result.retrain_recommended


def register(
    params: Mapping[str, Any],
    onnx_model: ArtifactLike,
    model: ArtifactLike,
    test_split: ArtifactLike,
    evaluation: ArtifactLike,
    validation: ArtifactLike,
    drift_json: ArtifactLike,
    drift_report: ArtifactLike,
    mlflow_tracking_uri: str,
) -> tuple[str, str]:
    """Returns (registered version, model_version) of the new ``@challenger``."""
    from housing.stages import register as stage

    with workspace(params) as validated, environment(TRACKING_URI_ENV, mlflow_tracking_uri):
        place(
            {
                paths.MODELS: onnx_model,
                paths.SKLEARN_MODEL: model,
                paths.TEST_CSV: test_split,
                paths.REPORTS: evaluation,
                paths.VALIDATION_JSON: validation,
                paths.DRIFT_JSON: drift_json,
                paths.DRIFT_HTML: drift_report,
            }
        )
        result = stage.run(validated)
    return result.version, result.model_version
