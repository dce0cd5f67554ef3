"""The loop's building blocks (settings, work dir, data split, step timing, the coastal_boom scenario) and the
false-positive rate of the whole A/B chain on a real model: real house values, the server's routing hash, the
analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from housing.artifact import load_verified, onnx_session
from housing.config import AbTestParams, GuardrailParams, HGBParams
from housing.errors import ConfigError
from housing.experiments.abtest import analyze, make_plan
from housing.experiments.loop import LoopConfig, StepClock
from housing.experiments.loop_steps import MARKER, prepare_workdir, split_data
from housing.experiments.traffic import TrafficConfig
from housing.serving.router import assign_variant
from housing.simulate import COASTAL_BOOM_FACTOR, degrees_from_coast, scenario_window
from settings_support import assert_options_follow, command_options

TARGET = "MedHouseVal"


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"drift_houses": 10}, r"drift_houses=10 is out of range: must be >= 100 \(--drift-houses\)"),
        (
            {"challenger_share": 1.0},
            r"challenger_share=1.0 is out of range: must be < 1.0 \(--challenger-share\)",
        ),
        ({"feedback_share": 0.0}, r"feedback_share=0.0 is out of range: must be > 0.0 \(--feedback-share\)"),
        (
            {"production_share": 0.95},
            r"production_share=0.95 is out of range: must be <= 0.8 \(--production-share\)",
        ),
        ({"max_iter": 0}, r"max_iter=0 is out of range: must be >= 1 \(--max-iter\)"),
    ],
)
def test_bad_loop_settings_name_the_flag(overrides, flag):
    with pytest.raises(ConfigError, match=f"loop setting {flag}"):
        LoopConfig(**overrides)


def test_workdir_is_rebuilt_only_when_the_loop_made_it(tmp_path, monkeypatch):
    made = prepare_workdir(tmp_path / "loop")
    assert (made / MARKER).is_file()
    (made / "old.txt").write_text("previous run")
    again = prepare_workdir(tmp_path / "loop")
    assert sorted(p.name for p in again.iterdir()) == [MARKER]  # a previous loop's output is replaced
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not made by `housing loop`"):
        prepare_workdir(foreign)
    assert (foreign / "precious.txt").read_text() == "keep"
    monkeypatch.chdir(foreign)
    with pytest.raises(ConfigError, match="current directory or one of its parents"):
        prepare_workdir(tmp_path)


def test_split_keeps_production_houses_out_of_training(tmp_path, params):
    result = split_data(params, LoopConfig(production_share=0.4).production_share, tmp_path)
    rows = result.rows
    assert rows["train"] + rows["drift_pool"] + rows["ab_pool"] == 20_640
    assert rows["drift_pool"] == rows["ab_pool"] == 4128
    frames = {name: pd.read_csv(path) for name, path in result.paths.items()}
    keys = {name: set(map(tuple, frame.to_numpy().round(6))) for name, frame in frames.items()}
    assert not keys["train"] & keys["drift_pool"]
    assert not keys["train"] & keys["ab_pool"]
    assert not keys["drift_pool"] & keys["ab_pool"]
    assert keys["reference"] <= keys["train"]


def test_coastal_boom_changes_the_price_of_the_same_coastal_blocks(housing_frame):
    window = scenario_window(housing_frame, "coastal_boom", 3000, 5, TARGET)
    plain = scenario_window(housing_frame, "coastal_shift", 3000, 5, TARGET)  # the same draw, real values
    features = [c for c in housing_frame.columns if c != TARGET]
    pd.testing.assert_frame_equal(window[features], plain[features])  # covariates: exactly coastal_shift
    coastal = degrees_from_coast(window) < 0.5
    assert coastal.mean() > 0.6  # weighted toward the shore
    ratio = window.loc[coastal, TARGET] / plain.loc[coastal, TARGET]
    capped = plain.loc[coastal, TARGET] * COASTAL_BOOM_FACTOR > housing_frame[TARGET].max()
    np.testing.assert_allclose(ratio[~capped], COASTAL_BOOM_FACTOR, rtol=1e-5)
    assert capped.any()
    assert (window.loc[capped[capped].index, TARGET] == housing_frame[TARGET].max()).all()  # the census cap
    pd.testing.assert_series_equal(window.loc[~coastal, TARGET], plain.loc[~coastal, TARGET])


def _records(houses, predictions, actuals, salt, order):
    """Inference-log records of one experiment: each house answered by the variant the hash picks."""
    records = []
    for rank, i in enumerate(order):
        request_id = f"{salt}-{i}"
        variant = assign_variant(houses[i], salt, 0.5)
        ts = 1_700_000_000.0 + rank
        records.append(
            {
                "kind": "prediction",
                "ts": ts,
                "request_id": request_id,
                "instance": 0,
                "variant": variant,
                "model_version": "sha-same",
                "prediction": float(predictions[i]),
            }
        )
        records.append(
            {"kind": "feedback", "ts": ts + 1, "request_id": request_id, "actual": float(actuals[i])}
        )
    return records


def test_identical_real_models_split_by_the_routing_hash_say_no_difference(model_dir, small_split):
    """Two copies of one real model, houses split by the server's hash with a new salt per experiment.

    Complements the synthetic false-positive test (test_abtest.py): real, skewed absolute errors of a real
    model on real houses, and the exact assignment function the server uses.
    """
    _, _, X_test, y_test = small_split
    metadata, payload = load_verified(model_dir)
    predictions = onnx_session(payload).run(None, {metadata.input_name: X_test})[0].ravel()
    abs_errors = np.abs(predictions - y_test)
    params = AbTestParams(
        mde=0.08,
        mde_kind="absolute",
        planning_sd=float(abs_errors.std(ddof=1)),
        min_n=50,
        bootstrap_resamples=400,
        seed=1,
        guardrails=GuardrailParams(latency_p95=False, error_rate=False),
    )
    plan = make_plan(params)
    assert plan.n_per_arm <= 450  # both arms reach the horizon with 1 000 houses split 50/50
    houses = [f"house-{i}" for i in range(len(y_test))]
    rng = np.random.default_rng(2024)
    verdicts = []
    for repetition in range(200):
        order = rng.permutation(len(y_test))
        result = analyze(_records(houses, predictions, y_test, f"exp-{repetition}", order), params, plan)
        verdicts.append(result.verdict)
    assert "collecting" not in verdicts
    share = verdicts.count("no_difference") / len(verdicts)
    assert share >= 0.95, verdicts


def test_options_take_defaults_limits_and_help_from_the_settings():
    assert_options_follow(LoopConfig, command_options("loop"))


@pytest.mark.parametrize(
    ("field", "params_model", "params_field", "values"),
    [
        ("max_iter", HGBParams, "max_iter", [0, 1, 500]),
        ("challenger_share", AbTestParams, "expected_challenger_share", [0.0, 0.5, 1.0]),
        ("mde", AbTestParams, "mde", [-0.1, 0.0, 0.15]),
    ],
)
def test_settings_the_loop_hands_to_params_follow_those_params_rules(
    field, params_model, params_field, values
):
    """One bound, not a copy: the loop refuses exactly what params.yaml would refuse for the same key."""
    for value in values:
        try:
            params_model(**{params_field: value})
            accepted_by_params = True
        except ValueError:
            accepted_by_params = False
        try:
            LoopConfig(**{field: value})
            accepted_by_loop = True
        except ConfigError:
            accepted_by_loop = False
        assert accepted_by_loop == accepted_by_params, (field, value)


def test_the_simulators_rules_apply_to_the_traffic_the_loop_sends(params):
    """Bug fixed: the loop allowed --concurrency up to 64 while the simulator it drives allows 256, and took
    --seed -1, which passed every check and failed in numpy's generator (a traceback) at step 3, after the
    champion was trained. The loop's traffic settings now carry the simulator's bounds."""
    config = LoopConfig(concurrency=200, rate=50, feedback_share=0.5, feedback_delay=0, seed=3)
    assert config.traffic() == TrafficConfig(
        concurrency=200, rate=50, feedback_share=0.5, feedback_delay=0, seed=3
    )
    with pytest.raises(ConfigError, match=r"loop setting seed=-1 is out of range: must be >= 0 \(--seed\)"):
        LoopConfig(seed=-1)
    with pytest.raises(ConfigError, match=r"concurrency=257 is out of range: must be <= 256"):
        LoopConfig(concurrency=257)
    with pytest.raises(ConfigError, match=r"scenario='nope': unknown scenario; valid: none, .*coastal_boom"):
        LoopConfig(scenario="nope")
    assert LoopConfig(challenger_share=0.2).ab_params(params).expected_challenger_share == 0.2


def test_each_step_is_announced_and_timed():
    lines: list[str] = []
    clock = StepClock(lines.append)
    clock.begin(1, "first")
    clock.lines(["  did it"])
    clock.begin(2, "second")
    clock.end()
    assert lines[0] == "\n[1/10] first (t = 0 s)"
    assert lines[1:] == ["  did it", "\n[2/10] second (t = 0 s)"]
    assert list(clock.seconds) == ["first", "second"]
    assert all(seconds >= 0 for seconds in clock.seconds.values())
