"""Evaluate stage: the ONNX serving artifact on the test split: metrics, slices, cost, plots, gates.

``reports/metrics.json`` holds only what the inputs determine (a DVC metric); the single-row latency goes
to the untracked ``reports/timings.json``. Missed gates write ``reports/evaluation_failed.json`` and keep
the last good reports.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from housing import paths
from housing.artifact import atomic_write_bytes, atomic_write_json, load_verified, onnx_session
from housing.config import FEATURES, EvaluateParams, GateParams, Params
from housing.errors import GateError
from housing.features import BAY_AREA, LATITUDE, LONGITUDE, LOS_ANGELES, MED_INC, distance_km
from housing.frames import load_xy
from housing.metrics import ppe_key, regression_metrics
from housing.results import EvaluateResult, Gate, ModelInfo
from housing.stages import main
from housing.timings import record_timings

Predict = Callable[[np.ndarray], np.ndarray]


def slice_labels(X: np.ndarray, cfg: EvaluateParams) -> dict[str, np.ndarray]:
    """Label each row by income band and by region (metro area within the radius, else north/south)."""
    edges = np.asarray(cfg.income_bands)
    names = [f"{lo:g}-{hi:g}" if hi < 1e6 else f">={lo:g}" for lo, hi in pairwise(edges)]
    band = np.clip(np.searchsorted(edges, X[:, MED_INC], side="right") - 1, 0, len(names) - 1)
    lat, lon = X[:, LATITUDE], X[:, LONGITUDE]
    region = np.where(lat >= 36.0, "other_north", "other_south").astype(object)
    region[distance_km(lat, lon, LOS_ANGELES) <= cfg.region_radius_km] = "los_angeles"
    region[distance_km(lat, lon, BAY_AREA) <= cfg.region_radius_km] = "bay_area"
    return {"income_band": np.asarray(names, dtype=object)[band], "region": region}


def slice_metrics(X: np.ndarray, y: np.ndarray, pred: np.ndarray, cfg: EvaluateParams) -> dict[str, Any]:
    result: dict[str, Any] = {}
    keep = ("n", "mae", "r2", "mdape", ppe_key(cfg.ppe_tolerances[0]), "bias")
    for dimension, labels in slice_labels(X, cfg).items():
        result[dimension] = {}
        for label in sorted(set(labels)):
            mask = labels == label
            metrics = regression_metrics(y[mask], pred[mask], cfg)
            result[dimension][label] = {k: metrics[k] for k in keep}
    return result


def permutation_importance(
    predict: Predict, X: np.ndarray, y: np.ndarray, repeats: int, seed: int
) -> dict[str, float]:
    """Mean increase in MAE when one raw feature is shuffled (engineered features follow their inputs)."""
    rng = np.random.default_rng(seed)
    base = float(np.mean(np.abs(predict(X) - y)))
    importance = {}
    for j, name in enumerate(FEATURES):
        losses = []
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            losses.append(float(np.mean(np.abs(predict(shuffled) - y))))
        importance[name] = round(float(np.mean(losses)) - base, 6)
    return dict(sorted(importance.items(), key=lambda kv: -kv[1]))


def median_latency_ms(predict: Predict, row: np.ndarray, calls: int = 200) -> float:
    predict(row)  # warm up
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        predict(row)
        samples.append(time.perf_counter() - started)
    return round(float(np.median(samples)) * 1e3, 4)


def check_gates(metrics: dict[str, float], gates: GateParams) -> dict[str, dict[str, Any]]:
    return {
        "r2_min": {
            "threshold": gates.r2_min,
            "value": metrics["r2"],
            "passed": metrics["r2"] >= gates.r2_min,
        },
        "mae_max": {
            "threshold": gates.mae_max,
            "value": metrics["mae"],
            "passed": metrics["mae"] <= gates.mae_max,
        },
    }


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def write_plots(y: np.ndarray, pred: np.ndarray, importance: dict[str, float], cfg: EvaluateParams) -> None:
    """Plot data as CSV for ``dvc plots`` and rendered PNGs for PR reports (offline-safe)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(y), size=min(cfg.plot_sample, len(y)), replace=False))
    sample = pd.DataFrame({"actual": y[idx], "predicted": pred[idx], "residual": pred[idx] - y[idx]}).round(5)
    atomic_write_bytes(paths.PLOTS / "predictions.csv", sample.to_csv(index=False).encode())
    imp = pd.DataFrame({"feature": list(importance), "importance": list(importance.values())})
    atomic_write_bytes(paths.PLOTS / "importance.csv", imp.to_csv(index=False).encode())

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(sample.actual, sample.predicted, s=4, alpha=0.4)
    lim = [0, max(sample.actual.max(), sample.predicted.max()) * 1.02]
    ax.plot(lim, lim, color="black", linewidth=1)
    ax.set(xlabel="actual ($100k)", ylabel="predicted ($100k)", title="Predicted vs actual (test)")
    atomic_write_bytes(paths.FIGURES / "pred_vs_actual.png", _png(fig))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(pred - y, bins=60)
    ax.set(xlabel="residual = predicted - actual ($100k)", ylabel="houses", title="Residuals (test)")
    atomic_write_bytes(paths.FIGURES / "residuals.png", _png(fig))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.barh(imp.feature[::-1], imp.importance[::-1])
    ax.set(xlabel="MAE increase when shuffled", title="Permutation importance (test)")
    atomic_write_bytes(paths.FIGURES / "feature_importance.png", _png(fig))
    plt.close(fig)


def run(params: Params) -> EvaluateResult:
    """Score ``models/`` on the test split; write the reports only when every gate passed."""
    cfg = params.evaluate
    metadata, payload = load_verified(paths.MODELS)
    session = onnx_session(payload)
    input_name = metadata.input_name

    def predict(X: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: X})[0].ravel().astype(np.float64)

    X, y = load_xy(paths.TEST_CSV, params.data)
    pred = predict(X)
    metrics = regression_metrics(y, pred, cfg)
    result = EvaluateResult(
        test=metrics,
        gates={name: Gate(**gate) for name, gate in check_gates(metrics, cfg.gates).items()},
        model=ModelInfo(version=metadata.model_version, onnx_bytes=len(payload)),
    )
    if not result.passed:
        atomic_write_json(paths.EVALUATION_FAILED_JSON, result.model_dump(mode="json"))
        failed = "; ".join(
            f"{name}: {g.value:.4f} vs threshold {g.threshold}"
            for name, g in result.gates.items()
            if not g.passed
        )
        raise GateError(
            f"evaluate: quality gate(s) missed ({failed}); previous reports kept, "
            f"details in {paths.EVALUATION_FAILED_JSON}"
        )
    record_timings("evaluate", onnx_latency_ms_p50=median_latency_ms(predict, X[:1]))
    importance = permutation_importance(predict, X, y, cfg.importance_repeats, params.split.seed)
    write_plots(y, pred, importance, cfg)
    atomic_write_json(paths.SLICES_JSON, slice_metrics(X, y, pred, cfg))
    atomic_write_json(paths.METRICS_JSON, result.model_dump(mode="json"))
    paths.EVALUATION_FAILED_JSON.unlink(missing_ok=True)  # describes an earlier, failed run
    return result


def describe(result: EvaluateResult) -> str:
    return json.dumps(result.test)


if __name__ == "__main__":
    main(run, describe)
