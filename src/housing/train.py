"""Build and fit the model pipeline: engineered features followed by the regressor from params."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.model_selection import KFold, RandomizedSearchCV
from sklearn.pipeline import Pipeline

from housing import paths
from housing.artifact import atomic_write_bytes, atomic_write_json
from housing.config import Params, TrainParams
from housing.data import load_xy
from housing.errors import DataError
from housing.features import HousingFeatures
from housing.timings import record_timings

# Types skops may rebuild when loading our own pipeline (never arbitrary pickles).
SKOPS_TRUSTED_TYPES = [
    "housing.features.HousingFeatures",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.tree._tree.Tree",
]


def build_pipeline(train_params: TrainParams) -> Pipeline:
    if train_params.model == "hgb":
        hgb = train_params.hgb
        regressor = HistGradientBoostingRegressor(
            learning_rate=hgb.learning_rate,
            max_iter=hgb.max_iter,
            max_leaf_nodes=hgb.max_leaf_nodes,
            max_depth=hgb.max_depth,
            min_samples_leaf=hgb.min_samples_leaf,
            l2_regularization=hgb.l2_regularization,
            max_bins=hgb.max_bins,
            early_stopping=hgb.early_stopping,
            random_state=train_params.seed,
        )
    else:
        rf = train_params.random_forest
        regressor = RandomForestRegressor(
            n_estimators=rf.n_estimators,
            max_depth=rf.max_depth,
            min_samples_leaf=rf.min_samples_leaf,
            max_features=rf.max_features,
            random_state=train_params.seed,
            n_jobs=1,
        )
    return Pipeline([("features", HousingFeatures()), ("model", regressor)])


def tune(
    pipeline: Pipeline, X: np.ndarray, y: np.ndarray, train_params: TrainParams
) -> tuple[Pipeline, dict]:
    """Randomised search with K-fold CV on the training split only (the test split is never seen)."""
    if train_params.model != "hgb":
        raise DataError("train.tune: tuning is defined for model 'hgb' only")
    space = train_params.tune
    grid = {
        "model__learning_rate": list(space.learning_rate),
        "model__max_iter": list(space.max_iter),
        "model__max_leaf_nodes": list(space.max_leaf_nodes),
        "model__min_samples_leaf": list(space.min_samples_leaf),
        "model__l2_regularization": list(space.l2_regularization),
    }
    search = RandomizedSearchCV(
        pipeline,
        grid,
        n_iter=space.n_iter,
        cv=KFold(space.cv_folds, shuffle=True, random_state=train_params.seed),
        scoring="neg_mean_absolute_error",
        random_state=train_params.seed,
        n_jobs=1,
        refit=True,
    )
    search.fit(X, y)
    best = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    return search.best_estimator_, {"best_params": best, "cv_mae": float(-search.best_score_)}


def snap_thresholds_to_float32(pipeline: Pipeline) -> None:
    """Round each HGB split threshold down to the nearest float32, in place.

    The model only ever sees float32 features (the feature step casts), and for a float32 x,
    ``x <= t`` holds exactly when ``x <= floor32(t)``: sklearn's predictions do not change. The ONNX
    tree ensemble stores thresholds as float32, so without this a threshold rounded *up* flips the
    decision for inputs equal to the rounded value and the two models disagree on a few rows.
    """
    regressor = pipeline.named_steps["model"]
    if not isinstance(regressor, HistGradientBoostingRegressor):
        return
    for iteration in regressor._predictors:
        for predictor in iteration:
            thresholds = predictor.nodes["num_threshold"]
            snapped = thresholds.astype(np.float32)
            rounded_up = snapped.astype(np.float64) > thresholds
            snapped[rounded_up] = np.nextafter(snapped[rounded_up], np.float32(-np.inf))
            predictor.nodes["num_threshold"] = snapped.astype(np.float64)


def fit(X: np.ndarray, y: np.ndarray, train_params: TrainParams) -> tuple[Pipeline, dict[str, Any]]:
    """Fit (and optionally tune) the pipeline; return it with a summary of what was done.

    The summary holds only what the inputs determine (no timings): it is a DVC-tracked output.
    """
    pipeline = build_pipeline(train_params)
    summary: dict[str, Any] = {"model": train_params.model, "rows": len(y)}
    if train_params.tune.enabled:
        pipeline, tuning = tune(pipeline, X, y, train_params)
        summary["tuning"] = tuning
    else:
        pipeline.fit(X, y)
    snap_thresholds_to_float32(pipeline)
    return pipeline, summary


# A fixed timestamp for every member of the skops archive (the zip format's earliest date).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def canonical_skops(payload: bytes) -> bytes:
    """The same skops archive with process-specific details removed, so equal models give equal bytes.

    skops names each array file and memo entry after ``id(obj)`` (a memory address) and stamps every zip
    member with the current time. Renumbering the ids in order of first appearance in ``schema.json`` and
    fixing the timestamps changes nothing skops reads back (ids are only keys that link entries).
    """
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        schema = json.loads(archive.read("schema.json"))
        members = {name: archive.read(name) for name in archive.namelist() if name != "schema.json"}
    renumbered: dict[int, int] = {}

    def new_id(old: int) -> int:
        return renumbered.setdefault(old, len(renumbered) + 1)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    out[key] = new_id(value)
                elif key == "file" and isinstance(value, str) and value.endswith(".npy"):
                    out[key] = f"{new_id(int(value.removesuffix('.npy')))}.npy"
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    schema = walk(schema)
    files = {f"{new_id(int(name.removesuffix('.npy')))}.npy": data for name, data in members.items()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in [("schema.json", json.dumps(schema, indent=2).encode()), *sorted(files.items())]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def save_pipeline(pipeline: Pipeline, path: Path) -> None:
    import skops.io as sio

    atomic_write_bytes(path, canonical_skops(sio.dumps(pipeline)))


def load_pipeline(path: Path) -> Pipeline:
    import skops.io as sio

    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: trained model not found (run the train stage)") from None
    return sio.loads(payload, trusted=SKOPS_TRUSTED_TYPES)


def train_stage(params: Params) -> dict[str, Any]:
    X, y = load_xy(paths.TRAIN_CSV, params.data)
    started = time.perf_counter()
    pipeline, summary = fit(X, y, params.train)
    record_timings("train", fit_seconds=round(time.perf_counter() - started, 3))
    save_pipeline(pipeline, paths.SKLEARN_MODEL)
    atomic_write_json(paths.TRAIN_SUMMARY, summary)
    return summary
