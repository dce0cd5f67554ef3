import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

from housing.config import TrainParams, TuneParams
from housing.errors import DataError
from housing.modelio import canonical_skops, load_pipeline, save_pipeline
from housing.stages.train import build_pipeline, fit, snap_thresholds_to_float32


def test_model_family_and_hyper_parameters_come_from_params():
    pipe = build_pipeline(TrainParams(model="random_forest", random_forest={"n_estimators": 7}))
    assert isinstance(pipe.named_steps["model"], RandomForestRegressor)
    assert pipe.named_steps["model"].n_estimators == 7
    pipe = build_pipeline(TrainParams(hgb={"learning_rate": 0.2, "max_iter": 11}, seed=3))
    model = pipe.named_steps["model"]
    assert isinstance(model, HistGradientBoostingRegressor)
    assert (model.learning_rate, model.max_iter, model.random_state) == (0.2, 11, 3)
    assert list(pipe.named_steps) == ["features", "model"]


def test_float32_threshold_snapping_keeps_sklearn_predictions(small_split):
    X, y, X_test, _ = small_split
    pipe = build_pipeline(TrainParams(hgb={"max_iter": 30}))
    pipe.fit(X, y)
    before = pipe.predict(np.vstack([X, X_test]))
    snap_thresholds_to_float32(pipe)
    np.testing.assert_array_equal(pipe.predict(np.vstack([X, X_test])), before)
    for predictor in pipe.named_steps["model"]._predictors[0]:
        thresholds = predictor.nodes["num_threshold"]
        np.testing.assert_array_equal(thresholds.astype(np.float32).astype(np.float64), thresholds)


def test_tuning_uses_cv_on_training_data_and_picks_from_the_grid(small_split):
    X, y, _, _ = small_split
    space = TuneParams(
        enabled=True,
        n_iter=2,
        cv_folds=2,
        learning_rate=(0.1,),
        max_iter=(20, 40),
        max_leaf_nodes=(15,),
        min_samples_leaf=(20,),
        l2_regularization=(0.0,),
    )
    pipe, summary = fit(X[:1000], y[:1000], TrainParams(tune=space))
    assert summary["tuning"]["best_params"]["max_iter"] in (20, 40)
    assert summary["tuning"]["cv_mae"] > 0
    assert pipe.predict(X[:3]).shape == (3,)


def test_tuning_is_only_defined_for_hgb(small_split):
    X, y, _, _ = small_split
    with pytest.raises(DataError, match=r"train\.tune"):
        fit(X[:200], y[:200], TrainParams(model="random_forest", tune={"enabled": True}))


def test_skops_round_trip_without_pickle(tmp_path, trained_pipeline, small_split):
    _, _, X_test, _ = small_split
    path = tmp_path / "model.skops"
    save_pipeline(trained_pipeline, path)
    restored = load_pipeline(path)
    np.testing.assert_array_equal(restored.predict(X_test), trained_pipeline.predict(X_test))
    with pytest.raises(DataError, match="trained model not found"):
        load_pipeline(tmp_path / "missing.skops")


def test_saved_model_bytes_depend_only_on_the_model(small_split, tmp_path):
    """model.skops is a DVC output: the same fit saved by different objects, at different times, gives the
    same bytes (skops itself names arrays after memory addresses and stamps the current time)."""
    import skops.io as sio

    X, y, X_test, _ = small_split
    params = TrainParams(hgb={"max_iter": 20})
    first, _ = fit(X, y, params)
    second, _ = fit(X, y, params)  # equal model, different Python objects (other ids)
    assert sio.dumps(first) != sio.dumps(second)
    save_pipeline(first, tmp_path / "a.skops")
    save_pipeline(second, tmp_path / "b.skops")
    assert (tmp_path / "a.skops").read_bytes() == (tmp_path / "b.skops").read_bytes()
    assert canonical_skops((tmp_path / "a.skops").read_bytes()) == (tmp_path / "a.skops").read_bytes()
    reloaded = load_pipeline(tmp_path / "b.skops")
    np.testing.assert_array_equal(reloaded.predict(X_test), first.predict(X_test))


def test_training_summary_holds_no_timing(small_split):
    X, y, _, _ = small_split
    _, summary = fit(X, y, TrainParams(hgb={"max_iter": 5}))
    assert summary == {"model": "hgb", "rows": len(y)}
