"""Train stage: build and fit the model pipeline (engineered features, then the regressor from params)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.model_selection import KFold, RandomizedSearchCV
from sklearn.pipeline import Pipeline

from housing import paths
from housing.artifact import atomic_write_json
from housing.config import Params, TrainParams
from housing.errors import DataError
from housing.features import HousingFeatures
from housing.frames import load_xy
from housing.modelio import save_pipeline
from housing.results import TrainResult
from housing.stages import main
from housing.timings import record_timings


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


def run(params: Params) -> TrainResult:
    """Fit the model pipeline (features + regressor) on the training split."""
    X, y = load_xy(paths.TRAIN_CSV, params.data)
    started = time.perf_counter()
    pipeline, summary = fit(X, y, params.train)
    record_timings("train", fit_seconds=round(time.perf_counter() - started, 3))
    save_pipeline(pipeline, paths.SKLEARN_MODEL)
    result = TrainResult(**summary)
    atomic_write_json(paths.TRAIN_SUMMARY, result.model_dump(mode="json", exclude_none=True))
    return result


def describe(result: TrainResult) -> str:
    return result.model_dump_json(exclude_none=True)


if __name__ == "__main__":
    main(run, describe)
