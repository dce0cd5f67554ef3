import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from housing.config import EvaluateParams
from housing.metrics import regression_metrics
from housing.stages.evaluate import check_gates, permutation_importance, slice_labels, slice_metrics


def test_standard_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.uniform(0.5, 5, 500)
    pred = y + rng.normal(0, 0.3, 500)
    m = regression_metrics(y, pred, EvaluateParams())
    assert m["r2"] == pytest.approx(r2_score(y, pred), abs=1e-6)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, pred), abs=1e-6)
    assert m["rmse"] == pytest.approx(root_mean_squared_error(y, pred), abs=1e-6)
    assert m["n"] == 500


def test_valuation_metrics_by_hand():
    y = np.array([1.0, 2.0, 4.0, 5.0])
    pred = np.array([1.05, 2.3, 3.0, 5.0])  # abs % errors: 5%, 15%, 25%, 0%
    m = regression_metrics(y, pred, EvaluateParams())
    assert m["mdape"] == pytest.approx(0.10)
    assert m["ppe10"] == pytest.approx(0.5)
    assert m["ppe20"] == pytest.approx(0.75)
    assert m["bias"] == pytest.approx((0.05 + 0.3 - 1.0) / 4)


def test_business_cost_is_asymmetric():
    cfg = EvaluateParams(cost={"over_valuation": 3.0, "under_valuation": 1.0})
    y = np.array([2.0, 2.0])
    over = regression_metrics(y, y + 0.5, cfg)["cost_usd_per_house"]
    under = regression_metrics(y, y - 0.5, cfg)["cost_usd_per_house"]
    assert over == pytest.approx(1.5)
    assert under == pytest.approx(0.5)


def test_gates_pass_and_fail():
    gates = EvaluateParams().gates
    assert all(g["passed"] for g in check_gates({"r2": 0.8, "mae": 0.3}, gates).values())
    result = check_gates({"r2": 0.7, "mae": 0.5}, gates)
    assert not result["r2_min"]["passed"]
    assert not result["mae_max"]["passed"]


def test_slices_cover_every_row(small_split):
    _, _, X, y = small_split
    cfg = EvaluateParams()
    labels = slice_labels(X, cfg)
    assert set(labels["region"]) <= {"bay_area", "los_angeles", "other_north", "other_south"}
    assert {"bay_area", "los_angeles"} <= set(labels["region"])
    slices = slice_metrics(X, y, y + 0.1, cfg)
    assert sum(s["n"] for s in slices["income_band"].values()) == len(y)
    assert sum(s["n"] for s in slices["region"].values()) == len(y)
    assert ">=6" in slices["income_band"]
    assert all(s["mae"] == pytest.approx(0.1) for s in slices["region"].values())


def test_permutation_importance_ranks_the_only_used_feature_first():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    y = 3 * X[:, 0]
    importance = permutation_importance(lambda a: 3 * a[:, 0], X, y, repeats=2, seed=0)
    assert next(iter(importance)) == "MedInc"
    assert importance["MedInc"] > 1
    assert importance["Latitude"] == 0
