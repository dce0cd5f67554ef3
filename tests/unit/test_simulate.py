"""`housing simulate`: seeded, byte-deterministic drift scenarios and windows built from inference logs."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from housing.checks import validate_frame
from housing.config import FEATURES, TARGET, DataParams
from housing.errors import ConfigError, DataError
from housing.frames import write_csv
from housing.logwindow import window_from_log
from housing.simulate import (
    SCENARIOS_HELP,
    degrees_from_coast,
    income_target_factor,
    scenario_window,
    write_window,
)

COLUMNS = [*FEATURES, TARGET]

# sha256 of windows drawn from the real raw file (itself pinned in test_data.py). A change means the same
# (raw file, scenario, rows, seed) no longer gives the same bytes: e.g. numpy changed its random stream.
PINNED = {
    ("covariate_mix", 500, 7): "cfd67833d41870dd7b87456e17a85089accea61d79025d42998e165c601c91a2",
    ("occupancy_spike", 500, 7): "48a903413e1f61ef0f4ed55fed9ffb4211765876badae513005602a6d1cf48d6",
}


@pytest.fixture(scope="module")
def raw_params(tmp_path_factory, housing_frame) -> DataParams:
    """DataParams whose raw file is the real data set, written as `housing ingest` writes it."""
    raw = tmp_path_factory.mktemp("raw") / "california_housing.csv"
    write_csv(housing_frame, raw)
    return DataParams(raw_path=raw)


@pytest.fixture(scope="module")
def windows(housing_frame) -> dict[str, pd.DataFrame]:
    """Every scenario, 2 000 rows, seed 3, from the real data."""
    return {name: scenario_window(housing_frame, name, 2000, 3, TARGET) for name in SCENARIOS_HELP}


def test_same_inputs_give_the_same_bytes(raw_params, tmp_path):
    for (scenario, rows, seed), digest in PINNED.items():
        first, second = tmp_path / "a.csv", tmp_path / "b.csv"
        assert write_window(raw_params, scenario, rows, seed, first) == rows
        write_window(raw_params, scenario, rows, seed, second)
        payload = first.read_bytes()
        assert payload == second.read_bytes()
        assert payload.startswith((",".join(COLUMNS) + "\n").encode())
        assert b"\r" not in payload
        assert hashlib.sha256(payload).hexdigest() == digest, (scenario, rows, seed)
    write_window(raw_params, "covariate_mix", 500, 8, second)
    assert second.read_bytes() != first.read_bytes()  # the seed matters


def test_every_scenario_passes_validation(windows, params):
    for name, window in windows.items():
        assert list(window.columns) == COLUMNS
        failed = [c for c in validate_frame(window, params.validate_, COLUMNS) if not c["passed"]]
        assert failed == [], name
        assert (window["HouseAge"] == window["HouseAge"].round()).all()


def test_income_shift_scales_income_and_value_of_the_same_rows(windows, housing_frame):
    none, shifted = windows["none"], windows["income_shift"]
    untouched = [c for c in COLUMNS if c not in ("MedInc", TARGET)]
    pd.testing.assert_frame_equal(none[untouched], shifted[untouched])  # same seed -> same rows
    cap = housing_frame["MedInc"].max()
    free = none["MedInc"] * 1.3 < cap
    np.testing.assert_allclose(shifted["MedInc"][free], none["MedInc"][free] * 1.3, atol=1e-6)
    assert (shifted["MedInc"][~free] == cap).all()
    assert income_target_factor(1.3) == 1.237  # 1.3 ** 0.81
    value_cap = housing_frame[TARGET].max()  # the census caps values at 5.00001
    free = none[TARGET] * 1.237 < value_cap
    np.testing.assert_allclose(shifted[TARGET][free], none[TARGET][free] * 1.237, atol=1e-6)
    assert shifted[TARGET].max() == value_cap


def test_other_scenarios_shift_what_they_say(windows, housing_frame):
    none = windows["none"]
    aged = windows["aging_stock"]
    np.testing.assert_array_equal(aged["HouseAge"], np.minimum(none["HouseAge"] + 10, 52))
    assert aged[TARGET].equals(none[TARGET])

    spike = windows["occupancy_spike"]
    changed = spike["AveOccup"] != none["AveOccup"]
    assert 0.35 < changed.mean() < 0.45
    np.testing.assert_allclose(spike["AveOccup"][changed], none["AveOccup"][changed] * 1.5)
    assert (spike["Population"][changed] > none["Population"][changed]).all()

    everywhere = np.median(degrees_from_coast(housing_frame))
    coastal = np.median(degrees_from_coast(windows["coastal_shift"]))
    inland = np.median(degrees_from_coast(windows["geo_shift"]))
    assert coastal < everywhere < inland
    assert windows["covariate_mix"]["MedInc"].mean() > 1.1 * none["MedInc"].mean()
    assert len(windows["none"].drop_duplicates()) == 2000  # drawn without replacement


def test_unknown_scenario_and_bad_row_count_are_config_errors(housing_frame):
    with pytest.raises(ConfigError, match=r"'bogus' is unknown; valid scenarios: none, income_shift, .*"):
        scenario_window(housing_frame, "bogus", 10, 0, TARGET)
    with pytest.raises(ConfigError, match="rows must be at least 1"):
        scenario_window(housing_frame, "none", 0, 0, TARGET)
    assert len(scenario_window(housing_frame.iloc[:50], "none", 80, 0, TARGET)) == 80  # more rows than data


def _prediction(request_id: str, instance: int, features: dict, **extra) -> dict:
    return {
        "kind": "prediction", "ts": 1.0, "request_id": request_id, "instance": instance, "model": "m",
        "model_version": "sha-0", "variant": "champion", "features": features, "prediction": 2.0,
        "latency_s": 0.001, **extra,
    }  # fmt: skip


def test_window_from_log_joins_feedback_and_skips_shadow_records(tmp_path, housing_frame):
    rows = housing_frame[list(FEATURES)].iloc[:3].to_dict("records")
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    older = [
        _prediction("a", 0, rows[0]),
        _prediction("a", 1, rows[1]),
        _prediction("a", 0, rows[0], variant="challenger", shadow=True),
        {"kind": "error", "ts": 1.0, "request_id": "x", "variant": "champion", "model_version": "v",
         "reason": "r"},
    ]  # fmt: skip
    newer = [_prediction("b", 0, rows[2]), {"kind": "feedback", "ts": 2.0, "request_id": "a", "instance": 1,
                                            "actual": 3.5}]  # fmt: skip
    for name, records in (
        ("inference-20250101T000000-000000", older),
        ("inference-20250102T000000-000001", newer),
    ):
        (log_dir / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "window.csv"
    assert window_from_log(log_dir, out, DataParams()) == 3
    window = pd.read_csv(out)
    assert list(window.columns) == COLUMNS
    np.testing.assert_allclose(window[list(FEATURES)], housing_frame[list(FEATURES)].iloc[:3])
    assert window[TARGET].isna().tolist() == [True, False, True]
    assert window[TARGET][1] == 3.5
    assert ",\n" in out.read_text()  # a missing actual is an empty field


def test_window_from_log_errors_name_the_log(tmp_path):
    with pytest.raises(DataError, match=r"nope: inference log not found"):
        window_from_log(tmp_path / "nope", tmp_path / "w.csv", DataParams())
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"kind": "feedback", "ts": 1, "request_id": "a", "instance": 0, "actual": 1}))
    with pytest.raises(DataError, match=r"empty\.jsonl: no \(non-shadow\) prediction records"):
        window_from_log(empty, tmp_path / "w.csv", DataParams())
    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps(_prediction("r1", 0, {"MedInc": 1.0})) + "\n")
    with pytest.raises(
        DataError, match=r"partial\.jsonl: prediction record 'r1' lacks feature\(s\) \['HouseAge'"
    ):
        window_from_log(partial, tmp_path / "w.csv", DataParams())
    assert not (tmp_path / "w.csv").exists()
