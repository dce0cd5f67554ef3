"""Drift stage: native K-S / chi-square / PSI, the retrain decision, input checks, outputs and Evidently."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from housing import paths
from housing.config import FEATURES, DriftParams
from housing.errors import DataError
from housing.results import DriftReport
from housing.simulate import scenario_window
from housing.stages.drift import (
    PSI_EPSILON,
    EvidentlyVerdict,
    chi2_test,
    detect_drift,
    ks_test,
    psi,
    stable_ids,
)
from housing.stages.drift import run as drift_stage

FEATURE_LIST = list(FEATURES)


def synthetic(n: int, seed: int, income_factor: float = 1.0) -> pd.DataFrame:
    """Eight independent features with roughly the data set's shapes (log-normal incomes, integer ages)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "MedInc": rng.lognormal(1.25, 0.45, n) * income_factor,
            "HouseAge": rng.integers(1, 53, n).astype(float),
            "AveRooms": rng.lognormal(1.65, 0.25, n),
            "AveBedrms": rng.normal(1.1, 0.1, n),
            "Population": rng.lognormal(7.0, 0.7, n).round(),
            "AveOccup": rng.lognormal(1.0, 0.3, n),
            "Latitude": rng.uniform(32.5, 42.0, n),
            "Longitude": rng.uniform(-124.3, -114.3, n),
        }
    )
    frame["MedHouseVal"] = 0.5 * frame["MedInc"]
    return frame


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return synthetic(3000, seed=1)


# --- the statistics against hand-computed values --------------------------------------------------------


def test_ks_statistic_by_hand_and_p_value_from_scipy():
    reference, current = np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 4.0, 5.0, 6.0])
    statistic, p_value = ks_test(reference, current)
    # The empirical CDFs differ most just after 2: F_ref = 2/4, F_cur = 0.
    assert statistic == 0.5
    assert p_value == pytest.approx(stats.ks_2samp(reference, current).pvalue)


@pytest.mark.parametrize("shift", [0.0, 0.02, 0.3])
def test_large_sample_ks_matches_scipy_and_only_shortcuts_negligible_p_values(shift):
    rng = np.random.default_rng(3)
    reference, current = rng.normal(size=30_000), rng.normal(shift, size=20_000)
    expected = stats.ks_2samp(reference, current)
    statistic, p_value = ks_test(reference, current, negligible_p=1e-8)
    assert statistic == expected.statistic
    if expected.pvalue >= 1e-6:
        assert p_value == expected.pvalue  # scipy's own finite-n computation
    else:  # the limiting distribution's value: as negligible, and within a few percent in log terms
        assert p_value < 1e-8
        assert math.isclose(math.log(p_value), math.log(max(expected.pvalue, 1e-300)), rel_tol=0.05)


def test_chi2_is_pearson_on_the_contingency_table_by_hand():
    reference = np.array(["a"] * 30 + ["b"] * 70)
    current = np.array(["a"] * 50 + ["b"] * 50)
    statistic, p_value = chi2_test(reference, current)
    # Expected counts: 40 a / 60 b in each row of the 2 x 2 table (no Yates correction).
    expected = 2 * (10**2 / 40 + 10**2 / 60)
    assert statistic == pytest.approx(expected)  # 8.333
    assert p_value == pytest.approx(stats.chi2.sf(expected, df=1))  # 0.0039
    assert chi2_test(np.array([1, 1, 1]), np.array([1, 1])) == (0.0, 1.0)  # a single category


def test_psi_categorical_by_hand():
    value = psi(np.array(["a", "b"] * 50), np.array(["a"] * 25 + ["b"] * 75), bins=10, categorical=True)
    assert value == pytest.approx((0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5))


def test_psi_numeric_uses_reference_quantile_bins_and_epsilon_for_empty_bins():
    reference = np.arange(100.0)  # quartile edges 24.75 / 49.5 / 74.25: 25 values per bin
    current = np.arange(50.0, 100.0)  # only the upper two bins
    expected = 2 * (PSI_EPSILON - 0.25) * math.log(PSI_EPSILON / 0.25) + 2 * 0.25 * math.log(0.5 / 0.25)
    assert psi(reference, current, bins=4) == pytest.approx(expected)
    assert psi(reference, reference.copy(), bins=4) == 0.0
    # Values beyond the reference's range fall into the open outer bins instead of being lost.
    assert psi(reference, np.array([-1e6, 1e6]), bins=4) == psi(reference, np.array([0.0, 99.0]), bins=4)


# --- detect_drift -------------------------------------------------------------------------------------


def test_same_distribution_is_not_drift(reference):
    # An independent sample (seed 9 happens to raise no 5% false alarm; the rate over many seeds is
    # checked in test_false_positive_rate_of_the_no_drift_scenario_is_low).
    result = detect_drift(reference, synthetic(2000, seed=9), DriftParams(), FEATURE_LIST)
    assert result.drifted_features == []
    assert result.drift_score == 0.0
    assert result.retrain_recommended is False
    assert (result.n_reference, result.n_current) == (3000, 2000)
    assert all(f.test == "ks" and f.p_value >= 0.05 and f.psi < 0.1 for f in result.features.values())
    shuffled = detect_drift(reference, reference.sample(frac=1, random_state=0), DriftParams(), FEATURE_LIST)
    assert all(f.statistic == 0.0 and f.p_value == 1.0 and f.psi == 0.0 for f in shuffled.features.values())


def test_income_shift_drifts_income_only_and_the_threshold_decides(reference):
    current = synthetic(2000, seed=9, income_factor=1.3)
    result = detect_drift(reference, current, DriftParams(threshold=0.3), FEATURE_LIST)
    assert result.drifted_features == ["MedInc"]
    assert result.features["MedInc"].p_value < 1e-10
    assert result.drift_score == 1 / 8
    assert result.retrain_recommended is False  # one drifted feature of eight is below the seed's 0.3
    # Boundary: retraining is recommended when the share reaches the threshold (>=), not only above it.
    assert detect_drift(reference, current, DriftParams(threshold=0.125), FEATURE_LIST).retrain_recommended
    assert not detect_drift(
        reference, current, DriftParams(threshold=0.126), FEATURE_LIST
    ).retrain_recommended


def test_parallel_feature_tests_give_the_serial_results(reference, monkeypatch):
    import housing.stages.drift

    current = synthetic(2000, seed=9, income_factor=1.3)
    serial = detect_drift(reference, current, DriftParams(), FEATURE_LIST)
    monkeypatch.setattr(housing.stages.drift, "PARALLEL_MIN_ROWS", 0)
    monkeypatch.setattr(housing.stages.drift.os, "cpu_count", lambda: 4)
    parallel = detect_drift(reference, current, DriftParams(), FEATURE_LIST)
    assert list(parallel.features) == FEATURE_LIST
    assert parallel.to_dict() == serial.to_dict()


def test_psi_override_decides_with_the_psi_threshold(reference):
    # A small shift: K-S on 5 000 rows notices it, PSI (a magnitude, not a significance) does not.
    current = synthetic(5000, seed=3, income_factor=1.04)
    ks_verdict = detect_drift(reference, current, DriftParams(), FEATURE_LIST).features["MedInc"]
    psi_verdict = detect_drift(reference, current, DriftParams(tests={"MedInc": "psi"}), FEATURE_LIST)
    income = psi_verdict.features["MedInc"]
    assert ks_verdict.drifted
    assert ks_verdict.p_value < 0.05
    assert (income.test, income.p_value, income.statistic) == ("psi", None, income.psi)
    assert income.psi < 0.2
    assert not income.drifted
    big = detect_drift(reference, synthetic(2000, 4, 1.5), DriftParams(tests={"MedInc": "psi"}), FEATURE_LIST)
    assert big.features["MedInc"].psi >= 0.2
    assert big.features["MedInc"].drifted
    strict = DriftParams(tests={"MedInc": "psi"}, psi_threshold=income.psi)  # boundary: PSI >= threshold
    assert detect_drift(reference, current, strict, FEATURE_LIST).features["MedInc"].drifted


def test_categorical_features_use_chi2_and_may_be_strings():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=1000), "kind": rng.choice(["a", "b", "c"], 1000)})
    same = pd.DataFrame({"x": rng.normal(size=800), "kind": rng.choice(["a", "b", "c"], 800)})
    shifted = same.assign(kind=rng.choice(["a", "b", "c"], 800, p=[0.6, 0.2, 0.2]))
    cfg = DriftParams(categorical=("kind",))
    assert detect_drift(reference, same, cfg, ["x", "kind"]).features["kind"].test == "chi2"
    assert not detect_drift(reference, same, cfg, ["x", "kind"]).features["kind"].drifted
    assert detect_drift(reference, shifted, cfg, ["x", "kind"]).drifted_features == ["kind"]
    with pytest.raises(DataError, match="ks needs a numeric feature"):
        detect_drift(reference, same, DriftParams(categorical=("kind",), tests={"kind": "ks"}), ["x", "kind"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["AveRooms"]), r"window\.csv: missing column\(s\) \['AveRooms'\]"),
        (lambda f: f.iloc[:0], r"window\.csv: has no rows"),
        (lambda f: f.assign(HouseAge=[np.nan] * 3 + [1.0] * (len(f) - 3)), r"'HouseAge' has 3 missing"),
        (lambda f: f.assign(Latitude="north"), r"'Latitude' must be numeric \(dtype object, e.g. 'north'\)"),
        (lambda f: f.assign(AveOccup=np.inf), r"'AveOccup' has \d+ infinite"),
    ],
    ids=["missing-column", "empty", "nan", "non-numeric", "infinite"],
)
def test_bad_windows_raise_a_data_error_naming_source_and_column(reference, mutate, message):
    current = mutate(synthetic(50, seed=5))
    with pytest.raises(DataError, match=message):
        detect_drift(reference, current, DriftParams(), FEATURE_LIST, sources=("reference.csv", "window.csv"))


def test_false_positive_rate_of_the_no_drift_scenario_is_low(housing_frame):
    """Windows drawn from the real data without drift: retraining must almost never be recommended."""
    reference = housing_frame.sample(5000, random_state=42)
    results = [
        detect_drift(
            reference,
            scenario_window(housing_frame, "none", 2000, seed, "MedHouseVal"),
            DriftParams(),
            FEATURE_LIST,
        )
        for seed in range(50)
    ]
    retrain_share = np.mean([r.retrain_recommended for r in results])
    per_feature_false_alarms = np.mean([r.drift_score for r in results])
    assert retrain_share <= 0.05
    assert per_feature_false_alarms <= 0.10  # K-S at p < 0.05 should flag ~5% (ties make it conservative)


# --- the stage: files, log windows, Evidently ---------------------------------------------------------


@pytest.fixture
def stage_dir(tmp_path, monkeypatch, params):
    """A working directory with artifacts/reference.csv, as `housing drift` sees it in the repo."""
    monkeypatch.chdir(tmp_path)
    paths.REFERENCE_CSV.parent.mkdir(parents=True)
    synthetic(3000, seed=1).to_csv(paths.REFERENCE_CSV, index=False)
    return tmp_path


def stage_params(params, window, **drift):
    return params.model_copy(
        update={
            "data": params.data.model_copy(update={"production_window_path": window}),
            "drift": params.drift.model_copy(update={"evidently_report": False, **drift}),
        }
    )


def test_stage_writes_the_contract_and_a_failure_leaves_previous_outputs(stage_dir, params):
    window = stage_dir / "window.csv"
    synthetic(2000, seed=9, income_factor=1.3).to_csv(window, index=False)
    result = drift_stage(stage_params(params, window))
    written = json.loads(paths.DRIFT_JSON.read_text())
    assert written == result.model_dump(mode="json")
    assert DriftReport.model_validate(written) == result  # the file reads back into the typed result
    assert set(written) == {
        "drift_score", "threshold", "retrain_recommended", "drifted_features", "n_reference", "n_current",
        "features", "evidently",
    }  # fmt: skip
    assert written["drifted_features"] == ["MedInc"]
    assert written["evidently"] is None
    assert set(written["features"]["MedInc"]) == {"test", "statistic", "p_value", "psi", "drifted"}
    assert "disabled" in paths.DRIFT_HTML.read_text()  # DVC's declared output exists even when disabled

    before = (paths.DRIFT_JSON.read_bytes(), paths.DRIFT_HTML.read_bytes())
    bad = stage_dir / "bad.csv"
    synthetic(100, seed=3).assign(MedInc=np.nan).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad\.csv: column 'MedInc' has 100 missing"):
        drift_stage(stage_params(params, window), current_path=bad)
    with pytest.raises(DataError, match=r"nope\.csv: production window not found"):
        drift_stage(stage_params(params, stage_dir / "nope.csv"))
    assert (paths.DRIFT_JSON.read_bytes(), paths.DRIFT_HTML.read_bytes()) == before
    assert not list(paths.REPORTS.glob(".*.tmp"))


def test_stage_reads_an_inference_log_directory_as_the_window(stage_dir, params):
    log_dir = stage_dir / "logs"
    log_dir.mkdir()
    rows = synthetic(400, seed=4, income_factor=1.3)
    lines = [
        {"kind": "prediction", "ts": 1.0 + i, "request_id": f"r{i}", "instance": 0, "model": "m",
         "model_version": "v", "variant": "champion", "features": row, "prediction": 2.0, "latency_s": 0.001}
        for i, row in enumerate(rows[FEATURE_LIST].to_dict("records"))
    ]  # fmt: skip
    (log_dir / "inference-20250101T000000-000000.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in lines)
    )
    result = drift_stage(stage_params(params, log_dir))
    assert result.n_current == 400
    assert result.drifted_features == ["MedInc"]


def test_evidently_verdicts_agree_with_native_and_the_html_is_written(stage_dir, params):
    """Runs Evidently for real (4-15 s, mostly its import)."""
    window = stage_dir / "window.csv"
    current = synthetic(2000, seed=9, income_factor=1.3)
    current["HouseAge"] = (current["HouseAge"] + 10).clip(upper=52)
    current.to_csv(window, index=False)
    cfg = params.model_copy(
        update={
            "data": params.data.model_copy(update={"production_window_path": window}),
            "drift": params.drift.model_copy(
                update={"evidently_report": True, "threshold": 0.25, "tests": {"AveRooms": "psi"}}
            ),
        }
    )
    result = drift_stage(cfg)
    assert result.drifted_features == ["MedInc", "HouseAge"]
    assert result.retrain_recommended is True  # 2/8 = 0.25 reaches the threshold
    assert result.evidently.model_dump() == {
        "drift_share": 0.25,
        "drifted_features": ["MedInc", "HouseAge"],
        "agrees": True,
    }
    html = paths.DRIFT_HTML.read_text()
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert "AveRooms" in html
    assert "PSI" in html
    assert len(html) > 100_000
    # A DVC output: the same inputs give the same bytes (Evidently's fresh UUIDs are renumbered).
    drift_stage(cfg)
    assert paths.DRIFT_HTML.read_text() == html
    assert "metric_00000000000000000000000000000001" in html


def test_stable_ids_renumber_uuids_consistently_and_leave_other_hex_alone():
    first, second = "4c7cd1269bca4a249701c81dd0b359bb", "01a2320a-5098-7399-826a-b87d485b1ab0"
    digest = "ab" * 32  # a 64-digit hex string is not an id
    html = f"var metric_{first} = {{id: '{second}', ref: '{first}', sha: '{digest}'}}"
    assert stable_ids(html) == (
        "var metric_00000000000000000000000000000001 = {id: '00000000-0000-0000-0000-000000000002', "
        f"ref: '00000000000000000000000000000001', sha: '{digest}'}}"
    )


def test_evidently_agreement_is_the_equality_of_the_drifted_sets(reference):
    native = detect_drift(reference, synthetic(2000, seed=9, income_factor=1.3), DriftParams(), FEATURE_LIST)
    assert EvidentlyVerdict(0.125, ["MedInc"], snapshot=None).to_dict(native)["agrees"] is True
    disagreeing = EvidentlyVerdict(0.25, ["MedInc", "AveOccup"], snapshot=None).to_dict(native)
    assert disagreeing == {"drift_share": 0.25, "drifted_features": ["MedInc", "AveOccup"], "agrees": False}
