"""Compile the fitted pipeline (features included) to ONNX, prove parity with sklearn, write metadata."""

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
from housing.data import load_xy
from housing.errors import GateError
from housing.evaluate import regression_metrics
from housing.features import register_onnx_converter
from housing.train import load_pipeline


def to_onnx_bytes(pipeline: Pipeline, n_features: int, opset: int) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    register_onnx_converter()
    model = to_onnx(
        pipeline,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        target_opset={"": opset, "ai.onnx.ml": 3},
    )
    # skl2onnx collects the opset imports in a set: their order follows PYTHONHASHSEED. Sorted, the same
    # pipeline always serialises to the same bytes (models/ is a DVC output).
    imports = sorted(model.opset_import, key=lambda entry: (entry.domain, entry.version))
    del model.opset_import[:]
    model.opset_import.extend(imports)
    return model.SerializeToString()


def onnx_predict(session, X: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: X.astype(np.float32, copy=False)})[0].ravel()


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


def export_stage(params: Params) -> ModelMetadata:
    pipeline = load_pipeline(paths.SKLEARN_MODEL)
    X_test, y_test = load_xy(paths.TEST_CSV, params.data)
    hashes = {"train": sha256_file(paths.TRAIN_CSV), "test": sha256_file(paths.TEST_CSV)}
    return export_model(pipeline, X_test, y_test, params, paths.MODELS, hashes)
