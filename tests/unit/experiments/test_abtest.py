"""Champion/challenger analysis: verdicts on synthetic inference logs, power analysis, peeking guards."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from abtest_synthetic import FEATURES, ab_records
from scipy import stats as sps

from housing.config import AbTestParams, GuardrailParams
from housing.experiments import stats
from housing.experiments.abtest import AbTestError, analyze, analyze_log, make_plan
from housing.experiments.abtest_report import render_markdown

DEFAULT = AbTestParams()
# A small experiment for repeated runs: absolute MDE 0.08 with sd 0.3 -> a horizon of ~280 per arm.
SMALL = AbTestParams(
    mde=0.08, mde_kind="absolute", planning_sd=0.3, min_n=50, bootstrap_resamples=400, seed=1
)


# --- power analysis ---------------------------------------------------------------------------------------


def test_sample_size_matches_the_textbook_value():
    # Two-sided alpha 0.05, power 0.8, effect 0.5 sd: 2 (1.95996 + 0.84162)^2 / 0.25 = 62.79 -> 63 per group.
    assert stats.sample_size_per_arm(0.5, 1.0, 0.05, 0.8) == 63
    # Halving the effect quadruples n; doubling sd quadruples n.
    assert stats.sample_size_per_arm(0.25, 1.0, 0.05, 0.8) == math.ceil(4 * 62.7910)
    assert stats.sample_size_per_arm(0.5, 2.0, 0.05, 0.8) == stats.sample_size_per_arm(0.25, 1.0, 0.05, 0.8)


def test_sample_size_agrees_with_statsmodels():
    power_module = pytest.importorskip("statsmodels.stats.power", reason="statsmodels not installed")
    for effect, alpha, power in [(0.5, 0.05, 0.8), (0.1, 0.02, 0.9), (0.084, 0.02, 0.8)]:
        expected = power_module.NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power)
        assert stats.sample_size_per_arm(effect, 1.0, alpha, power) == math.ceil(expected)


def test_default_plan_is_the_formula_on_the_params():
    plan = make_plan(DEFAULT)
    delta = DEFAULT.mde * DEFAULT.planning_mae
    z = sps.norm.ppf(1 - DEFAULT.alpha / 2) + sps.norm.ppf(DEFAULT.power)
    assert plan.n_per_arm == math.ceil(2 * DEFAULT.planning_sd**2 * z**2 / delta**2)
    assert plan.describe().startswith(f"need {plan.n_per_arm} per arm")
    assert math.isclose(plan.delta, 0.027)


def test_plan_overrides_floor_and_errors():
    plan = make_plan(DEFAULT, mde=0.5, mde_kind="absolute", sd=1.0, alpha=0.05)
    assert (plan.n_formula, plan.n_per_arm) == (63, DEFAULT.min_n)
    assert "raised from 63" in plan.describe()
    with pytest.raises(AbTestError, match="mde_kind"):
        make_plan(DEFAULT, mde_kind="percent")
    with pytest.raises(AbTestError, match="sd: must be positive"):
        make_plan(DEFAULT, sd=0.0)


# --- verdicts ---------------------------------------------------------------------------------------------


def test_clearly_better_challenger_wins():
    result = analyze(ab_records(7000, seed=11, challenger_noise=0.28), DEFAULT)
    assert result.verdict == "challenger_wins", result.reason
    primary = result.primary
    horizon = make_plan(DEFAULT).n_per_arm
    assert primary.n_champion == primary.n_challenger == horizon
    assert primary.test == "welch_t"
    assert primary.difference < 0
    assert primary.ci_high < 0
    assert primary.p_value < DEFAULT.alpha
    assert all(g.passed for g in result.guardrails)
    assert result.variants.challenger.model_versions == ["sha-challenger"]


def test_clearly_worse_challenger_loses():
    result = analyze(ab_records(7000, seed=12, challenger_noise=0.45), DEFAULT)
    assert result.verdict == "champion_wins", result.reason
    assert result.primary.difference > 0
    assert result.primary.ci_low > 0


def test_too_few_observations_is_collecting_and_no_test_is_read():
    below_min = analyze(ab_records(120, seed=13, challenger_noise=0.1), DEFAULT)
    assert below_min.verdict == "collecting"
    assert "minimum 100" in below_min.reason
    # A huge effect, but the fixed horizon (2820 per arm) is not reached: no verdict and no p-value shown.
    before_horizon = analyze(ab_records(2000, seed=13, challenger_noise=0.1), DEFAULT)
    assert before_horizon.verdict == "collecting"
    assert before_horizon.primary is None
    assert "fixed horizon not reached" in before_horizon.reason
    assert before_horizon.progress.required_per_arm == make_plan(DEFAULT).n_per_arm


def test_no_feedback_yet_is_collecting():
    result = analyze(ab_records(500, seed=14, feedback_share=0.0), SMALL)
    assert result.verdict == "collecting"
    assert "no champion or challenger observations" in result.reason
    assert result.variants.champion.requests > 0
    assert result.variants.champion.n == 0


def test_fixed_horizon_verdict_does_not_change_after_the_horizon():
    records = ab_records(7000, seed=15, challenger_noise=0.30)
    first = analyze(records, DEFAULT)
    # Later traffic where the challenger is terrible: analysed data stop at the horizon, so nothing changes.
    later = ab_records(3000, seed=16, challenger_noise=2.0)
    for record in later:
        record["ts"] += 1e6
    second = analyze(records + later, DEFAULT)
    assert first.verdict == second.verdict == "challenger_wins"
    assert first.primary.difference == second.primary.difference
    assert second.variants.challenger.n > second.variants.challenger.n_analysed


def _no_difference_share(params_list, reps=200, n_houses=700):
    counts = [0] * len(params_list)
    for seed in range(reps):
        records = ab_records(n_houses, seed=1000 + seed)
        for i, params in enumerate(params_list):
            verdict = analyze(records, params).verdict
            assert verdict != "collecting"
            counts[i] += verdict == "no_difference"
    return [c / reps for c in counts]


def test_identical_models_say_no_difference_in_at_least_95_percent_of_repetitions():
    at_default_alpha, at_005 = _no_difference_share([SMALL, SMALL.model_copy(update={"alpha": 0.05})])
    assert at_default_alpha >= 0.95
    # Calibration: at alpha 0.05 the false-positive rate is close to 5% (not a test that never fires):
    # 200 repetitions, binomial sd 1.5 points -> within [1%, 10%].
    assert 0.90 <= at_005 <= 0.99


# --- paired (shadow) design -------------------------------------------------------------------------------


def test_shadow_mode_uses_the_paired_design():
    identical = analyze(ab_records(3000, seed=21, shadow=True, identical=True), DEFAULT)
    assert identical.design == "paired"
    assert identical.verdict == "no_difference"
    assert identical.primary.test == "paired_t"
    assert identical.primary.p_value == 1.0
    assert identical.variants.challenger.shadow_requests == 3000
    assert identical.variants.challenger.requests == 0


def test_paired_design_detects_what_the_unpaired_test_misses():
    # Both models share most of their error (same hard houses): pairing removes it.
    records = ab_records(
        3000, seed=22, shadow=True, shared_noise=0.35, champion_noise=0.15, challenger_noise=0.12
    )
    paired = analyze(records, DEFAULT)
    unpaired = analyze(records, DEFAULT.model_copy(update={"design": "unpaired"}))
    assert paired.design == "paired"
    assert unpaired.design == "unpaired"
    assert paired.primary.difference == pytest.approx(unpaired.primary.difference)
    assert paired.verdict == "challenger_wins", paired.reason
    assert unpaired.verdict == "no_difference", unpaired.reason


# --- guardrails -------------------------------------------------------------------------------------------


def test_server_error_guardrail_vetoes_a_better_challenger():
    result = analyze(ab_records(7000, seed=31, challenger_noise=0.28, challenger_error_rate=0.03), DEFAULT)
    assert result.verdict == "champion_wins"
    failed = {g.name for g in result.guardrails if not g.passed}
    assert failed == {"error_rate"}
    assert "guardrail(s) error_rate" in result.reason
    assert result.variants.challenger.error_rate > 0.02


def test_latency_guardrail_vetoes_a_slow_challenger():
    result = analyze(ab_records(7000, seed=32, challenger_noise=0.28, challenger_latency_ms=2.0), DEFAULT)
    assert result.verdict == "champion_wins"
    latency = next(g for g in result.guardrails if g.name == "latency_p95")
    assert not latency.passed
    assert latency.ratio_lower_bound > 1.1


def test_ppe10_guardrail_vetoes_a_challenger_that_is_never_within_10_percent():
    # Always 11% too high: a lower MAE than the noisy champion, but PPE10 drops from ~44% to 0%.
    records = ab_records(7000, seed=33)
    actual = {r["request_id"]: r["actual"] for r in records if r["kind"] == "feedback"}
    for record in records:
        if record["kind"] == "prediction" and record["variant"] == "challenger":
            record["prediction"] = actual[record["request_id"]] * 1.11
    result = analyze(records, DEFAULT)
    assert result.primary.direction == "challenger_better"
    assert result.verdict == "champion_wins"
    assert [g.name for g in result.guardrails if not g.passed] == ["ppe10"]
    assert result.variants.challenger.ppe10 == 0.0


def test_guardrails_can_be_disabled():
    off = DEFAULT.model_copy(
        update={"guardrails": GuardrailParams(error_rate=False, ppe10=False, latency_p95=False)}
    )
    result = analyze(ab_records(7000, seed=31, challenger_noise=0.28, challenger_error_rate=0.03), off)
    assert result.guardrails == []
    assert result.verdict == "challenger_wins"


def test_client_errors_do_not_count_against_a_variant():
    records = ab_records(400, seed=34)
    records += [
        {
            "kind": "error",
            "ts": 1.0,
            "request_id": f"bad-{i}",
            "variant": "challenger",
            "model_version": "v",
            "reason": "out_of_range",
        }
        for i in range(50)
    ]
    result = analyze(records, SMALL)
    assert result.variants.challenger.server_errors == 0
    assert result.variants.challenger.errors_by_reason == {"out_of_range": 50}


# --- sequential method (mSPRT) -----------------------------------------------------------------------------


def test_msprt_keeps_the_false_positive_rate_under_continuous_peeking():
    """20 looks per experiment: naive t-tests at every look inflate alpha; the mSPRT does not."""
    rng = np.random.default_rng(5)
    reps, looks, per_look, alpha, tau = 400, 20, 50, 0.05, 0.05
    naive = msprt_rejections = 0
    for _ in range(reps):
        a = np.abs(rng.normal(0, 0.35, looks * per_look))
        b = np.abs(rng.normal(0, 0.35, looks * per_look))
        naive_hit = msprt_hit = False
        for k in range(1, looks + 1):
            x, y = a[: k * per_look], b[: k * per_look]
            naive_hit |= sps.ttest_ind(y, x, equal_var=False).pvalue < alpha
            variance = x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y)
            msprt_hit |= stats.msprt(float(y.mean() - x.mean()), variance, tau, alpha).p_value <= alpha
        naive += naive_hit
        msprt_rejections += msprt_hit
    assert naive / reps > 0.10  # peeking at 20 looks roughly triples the nominal 5%
    assert msprt_rejections / reps <= alpha


def test_msprt_decides_early_on_a_large_effect_and_waits_otherwise():
    params = DEFAULT.model_copy(update={"method": "msprt"})
    horizon = make_plan(DEFAULT).n_per_arm
    early = analyze(ab_records(2000, seed=41, challenger_noise=0.25), params)
    assert early.verdict == "challenger_wins", early.reason
    assert early.primary.n_champion < horizon
    assert early.primary.decided_by == "msprt"
    waiting = analyze(ab_records(2000, seed=42), params)
    assert waiting.verdict == "collecting"
    assert "mSPRT not conclusive" in waiting.reason
    assert waiting.progress.required_per_arm == math.ceil(horizon * params.msprt_max_n_factor)


def test_msprt_confidence_interval_contains_the_estimate_and_widens_with_variance():
    narrow = stats.msprt(0.01, 1e-5, 0.03, 0.05)
    wide = stats.msprt(0.01, 1e-4, 0.03, 0.05)
    assert narrow.ci[0] < 0.01 < narrow.ci[1]
    assert (wide.ci[1] - wide.ci[0]) > (narrow.ci[1] - narrow.ci[0])
    assert stats.msprt(0.0, 0.0, 0.03, 0.05).p_value == 1.0


# --- outputs ----------------------------------------------------------------------------------------------


def test_json_and_markdown_carry_the_numbers():
    result = analyze(ab_records(7000, seed=51, challenger_noise=0.30), DEFAULT)
    text = json.dumps(result.model_dump(mode="json"), allow_nan=False)  # strict JSON: no NaN/Infinity
    assert json.loads(text)["verdict"] == "challenger_wins"
    markdown = render_markdown(result)
    primary, champ, chal = result.primary, result.variants.champion, result.variants.challenger
    for needle in [
        "`challenger_wins`",
        f"need {result.plan.n_per_arm} per arm",
        f"{champ.mae:.4f}",
        f"{chal.mae:.4f}",
        f"{primary.difference:.4f}",
        f"[{primary.ci_low:.4f}, {primary.ci_high:.4f}]",
        f"{primary.p_value:.3g}",
        "98% CI",
        "error_rate",
        "latency_p95",
        "sha-challenger",
    ]:
        assert needle in markdown, needle
    collecting = render_markdown(analyze(ab_records(300, seed=52), DEFAULT))
    assert "`collecting`" in collecting
    assert "peeking guard" in collecting


def test_unknown_variants_and_duplicates_are_reported():
    records = ab_records(400, seed=61)
    records.append(dict(records[0]))  # a reused request id
    records.append({**records[0], "variant": "canary"})
    result = analyze(records, SMALL)
    assert any("unknown variant 'canary'" in w for w in result.warnings)
    assert any("duplicate prediction" in w for w in result.warnings)


def test_analyze_log_reads_the_servers_inference_log(tmp_path):
    """End to end through the real log writer (housing.inference_log), files and rotation included."""
    from housing.inference_log import InferenceLogWriter

    writer = InferenceLogWriter(tmp_path, max_bytes=64 * 1024)
    for record in ab_records(3000, seed=71, challenger_noise=0.25, with_features=True):
        if record["kind"] == "prediction":
            writer.log_predictions(
                ts=record["ts"],
                request_id=record["request_id"],
                model="housing",
                model_version=record["model_version"],
                variant=record["variant"],
                feature_names=FEATURES,
                features=[[1.0] * len(FEATURES)],
                predictions=[record["prediction"]],
                latency_s=record["latency_s"],
                shadow=bool(record.get("shadow")),
            )
        elif record["kind"] == "feedback":
            writer.log_feedback(ts=record["ts"], request_id=record["request_id"], actuals=[record["actual"]])
    writer.close()
    assert len(list(tmp_path.glob("inference-*.jsonl"))) > 1  # rotated
    params = SMALL.model_copy(update={"method": "msprt"})
    result = analyze_log(tmp_path, params)
    assert result.verdict == "challenger_wins"
    assert result.source == str(tmp_path)
    assert result.progress.n_champion + result.progress.n_challenger == 3000
    with pytest.raises(AbTestError, match="inference log not found"):
        analyze_log(tmp_path / "missing", params)
