"""Regression metrics of a model on labelled rows: shared by evaluate, export (its metadata) and the loop."""

from __future__ import annotations

import numpy as np

from housing.config import EvaluateParams


def ppe_key(tolerance: float) -> str:
    return f"ppe{round(tolerance * 100)}"


def regression_metrics(y: np.ndarray, pred: np.ndarray, cfg: EvaluateParams) -> dict[str, float]:
    """R², MAE, RMSE, the valuation metrics MdAPE and PPEx, bias and the business cost per house."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    error = pred - y
    abs_pct = np.abs(error) / np.abs(y)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    cost = cfg.cost.over_valuation * np.clip(error, 0, None) + cfg.cost.under_valuation * np.clip(
        -error, 0, None
    )
    metrics = {
        "r2": 1.0 - float(np.sum(error**2)) / ss_tot if ss_tot > 0 else float("nan"),
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mdape": float(np.median(abs_pct)),
        **{ppe_key(t): float(np.mean(abs_pct <= t)) for t in cfg.ppe_tolerances},
        "bias": float(np.mean(error)),
        "cost_usd_per_house": float(np.mean(cost)),
        "n": len(y),
    }
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
