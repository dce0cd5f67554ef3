"""Register stage: log the run to MLflow (params, metrics, reports, figures, both models) and register the
ONNX artifact as a version with alias ``@challenger``.

No DVC output: the run id and version are facts about the tracking server, not about the inputs
(``reports/registration.json`` records the last registration, untracked). Registering an artifact the
registry already holds only moves ``@challenger`` (``registry.register_model`` is idempotent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from housing import paths
from housing.artifact import atomic_write_json
from housing.config import Params
from housing.frames import load_xy
from housing.modelio import SKOPS_TRUSTED_TYPES, load_pipeline
from housing.registry import flatten, pip_requirements, register_model
from housing.results import EvaluateResult, RegisterResult
from housing.stages import main
from housing.variants import Variant

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/housing: logged with the sklearn model


def run(params: Params) -> RegisterResult:
    """Log params, metrics, reports and both models; register the ONNX model as @challenger."""
    import numpy as np
    from mlflow.models import infer_signature

    metrics = EvaluateResult.model_validate_json(paths.METRICS_JSON.read_text())
    X_test, _ = load_xy(paths.TEST_CSV, params.data)
    sklearn_model = load_pipeline(paths.SKLEARN_MODEL)
    example = X_test[:5]
    signature = infer_signature(example, sklearn_model.predict(example).astype(np.float32))

    def log_pipeline_run(mlflow: Any) -> None:
        logged = {"train": params.train.model_dump(), "split": params.split.model_dump()}
        mlflow.log_params(flatten("", logged))
        # The evaluate stage's full set (ppe20, bias, cost, n beyond what the export recorded).
        mlflow.log_metrics({k: float(v) for k, v in metrics.test.items()})
        for report in (paths.METRICS_JSON, paths.SLICES_JSON, paths.VALIDATION_JSON, paths.DRIFT_JSON):
            if report.exists():
                mlflow.log_artifact(str(report), artifact_path="reports")
        if paths.DRIFT_HTML.exists():
            mlflow.log_artifact(str(paths.DRIFT_HTML), artifact_path="reports")
        if paths.FIGURES.exists():
            mlflow.log_artifacts(str(paths.FIGURES), artifact_path="figures")
        mlflow.sklearn.log_model(
            sklearn_model,
            name="sklearn_model",
            signature=signature,
            pip_requirements=pip_requirements("scikit-learn", "numpy", "skops"),
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            code_paths=[str(PACKAGE_DIR)],
        )

    result = register_model(
        paths.MODELS, params.register_, Variant.CHALLENGER, signature=signature, log_extras=log_pipeline_run
    )
    atomic_write_json(paths.REGISTRATION_JSON, result.model_dump(mode="json"))
    return result


def describe(result: RegisterResult) -> str:
    return result.model_dump_json()


if __name__ == "__main__":
    main(run, describe)
