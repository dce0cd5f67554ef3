"""Export stage: compile the fitted pipeline (features included) to ONNX, prove parity, write metadata."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from housing import paths
from housing.artifact import (
    FeatureSpec,
    ModelMetadata,
    atomic_write_bytes,
    onnx_session,
    sha256_file,
    write_metadata,
)
from housing.config import Params
from housing.errors import GateError
from housing.frames import load_xy
from housing.metrics import regression_metrics
from housing.modelio import load_pipeline, onnx_predict, to_onnx_bytes
from housing.results import ExportResult
from housing.stages import main


def export_model(
    pipeline: Pipeline,
    X_test: np.ndarray,
    y_test: np.ndarray,
    params: Params,
    out_dir: Path,
    data_hashes: dict[str, str] | None = None,
) -> ModelMetadata:
    """Convert, check parity on the test split, and only then write model.onnx + metadata.json."""
    payload = to_onnx_bytes(pipeline, X_test.shape[1], params.export.opset)
    onnx_pred = onnx_predict(onnx_session(payload), X_test)
    max_diff = float(np.max(np.abs(onnx_pred - pipeline.predict(X_test))))
    if not max_diff <= params.export.max_abs_diff:
        raise GateError(
            f"export: ONNX parity failed on the test split: max |onnx - sklearn| = {max_diff:.3g} "
            f"> export.max_abs_diff = {params.export.max_abs_diff:g}; nothing written"
        )
    digest = hashlib.sha256(payload).hexdigest()
    rules = params.validate_.columns
    metrics = regression_metrics(y_test, onnx_pred, params.evaluate)
    metadata = ModelMetadata(
        model_name=params.register_.model_name,
        model_version=f"sha-{digest[:12]}",
        features=tuple(FeatureSpec(f, rules[f].min, rules[f].max) for f in params.data.features),
        target=params.data.target,
        onnx_sha256=digest,
        training_data_sha256=(data_hashes or {}).get("train", ""),
        holdout_sha256=(data_hashes or {}).get("test", ""),
        metrics={k: metrics[k] for k in ("r2", "mae", "rmse", "mdape", "ppe10")},
        parity_max_abs_diff=max_diff,
    )
    atomic_write_bytes(out_dir / metadata.onnx_file, payload)
    write_metadata(out_dir, metadata)
    return metadata


def run(params: Params) -> ExportResult:
    """Compile ``artifacts/model.skops`` to ``models/`` (model.onnx + metadata.json)."""
    pipeline = load_pipeline(paths.SKLEARN_MODEL)
    X_test, y_test = load_xy(paths.TEST_CSV, params.data)
    hashes = {"train": sha256_file(paths.TRAIN_CSV), "test": sha256_file(paths.TEST_CSV)}
    metadata = export_model(pipeline, X_test, y_test, params, paths.MODELS, hashes)
    return ExportResult(
        model_version=metadata.model_version,
        onnx_sha256=metadata.onnx_sha256,
        parity_max_abs_diff=metadata.parity_max_abs_diff or 0.0,
    )


def describe(result: ExportResult) -> str:
    return (
        f"exported {result.model_version}: parity max |diff| {result.parity_max_abs_diff:.2e}, "
        f"sha256 {result.onnx_sha256[:12]}"
    )


if __name__ == "__main__":
    main(run, describe)
