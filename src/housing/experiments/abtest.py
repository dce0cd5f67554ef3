"""Champion/challenger A/B analysis of the inference log: per-variant metrics and a statistical verdict.

Input: inference-log records (docs/serving.md; ``prediction``, ``feedback`` and ``error`` kinds). Predictions
are joined with ground-truth feedback on (request_id, instance). One primary decision metric, the difference
of mean absolute errors (challenger minus champion), decides; guardrails (server error rate, PPE10, latency
p95) can only veto a promotion. The result is an :class:`~housing.experiments.verdict.AbVerdict`. Method and
defaults: docs/abtest.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from housing.config import AbTestParams
from housing.experiments import stats
from housing.experiments.abtest_report import format_number
from housing.experiments.verdict import (
    AbTestError,
    AbVerdict,
    Arms,
    Guardrail,
    MsprtSummary,
    PilotEstimate,
    Plan,
    PlanAtHorizon,
    PrimaryTest,
    Progress,
    SampleRatio,
    VariantSummary,
    Verdict,
)
from housing.variants import Variant

__all__ = [
    "AbTestError",
    "AbTestParams",
    "AbVerdict",
    "Plan",
    "Verdict",
    "analyze",
    "analyze_log",
    "make_plan",
]

Key = tuple[str, int]  # (request_id, instance)


# --- power analysis --------------------------------------------------------------------------------------


def make_plan(
    params: AbTestParams,
    *,
    mde: float | None = None,
    mde_kind: str | None = None,
    baseline_mae: float | None = None,
    sd: float | None = None,
    alpha: float | None = None,
    power: float | None = None,
) -> Plan:
    """Power analysis from params, any argument overriding its params value."""
    mde = params.mde if mde is None else mde
    mde_kind = mde_kind or params.mde_kind
    baseline_mae = params.planning_mae if baseline_mae is None else baseline_mae
    sd = params.planning_sd if sd is None else sd
    alpha = params.alpha if alpha is None else alpha
    power = params.power if power is None else power
    if mde_kind not in ("relative", "absolute"):
        raise AbTestError(f"mde_kind: must be 'relative' or 'absolute', got {mde_kind!r}")
    for name, value in (("mde", mde), ("baseline_mae", baseline_mae), ("sd", sd)):
        if not value > 0:
            raise AbTestError(f"{name}: must be positive, got {value}")
    if not (0 < alpha < 0.5 and 0 < power < 1):
        raise AbTestError(f"alpha must be in (0, 0.5) and power in (0, 1); got alpha={alpha}, power={power}")
    delta = mde * baseline_mae if mde_kind == "relative" else mde
    n = stats.sample_size_per_arm(delta, sd, alpha, power)
    return Plan(
        n_per_arm=max(n, params.min_n),
        n_formula=n,
        delta=delta,
        mde=mde,
        mde_kind=mde_kind,  # type: ignore[arg-type]  # checked above
        baseline_mae=baseline_mae,
        sd=sd,
        alpha=alpha,
        power=power,
    )


# --- joining the log -------------------------------------------------------------------------------------


@dataclass
class _Arm:
    versions: Counter = field(default_factory=Counter)
    predictions: dict[Key, tuple[float, float]] = field(default_factory=dict)  # key -> (ts, prediction)
    served: set[str] = field(default_factory=set)  # request ids answered by this variant
    shadow: set[str] = field(default_factory=set)  # request ids scored in shadow mode
    latency: dict[str, float] = field(default_factory=dict)  # request id -> seconds
    errors: Counter = field(default_factory=Counter)  # reason -> count
    duplicates: int = 0


@dataclass
class _Joined:
    arms: dict[Variant, _Arm]
    actuals: dict[Key, float]
    ignored_variants: Counter


def _key(record: dict[str, Any]) -> Key:
    return str(record.get("request_id")), int(record.get("instance", 0))


def join(records: Iterable[dict[str, Any]]) -> _Joined:
    """Group prediction and error records by variant; index feedback by (request_id, instance)."""
    arms = {variant: _Arm() for variant in Variant}
    actuals: dict[Key, float] = {}
    ignored: Counter = Counter()
    for record in records:
        kind = record.get("kind")
        if kind == "feedback":
            actual = record.get("actual")
            if isinstance(actual, int | float) and math.isfinite(actual):
                actuals.setdefault(_key(record), float(actual))
            continue
        if kind not in ("prediction", "error"):
            continue
        variant = record.get("variant")
        arm = arms.get(variant)  # type: ignore[call-overload]  # a StrEnum key matches its plain string
        if arm is None:
            ignored[str(variant)] += 1
            continue
        if kind == "error":
            arm.errors[str(record.get("reason"))] += 1
            continue
        key = _key(record)
        if key in arm.predictions:  # a reused request id: keep the first prediction
            arm.duplicates += 1
            continue
        arm.predictions[key] = (float(record.get("ts", 0.0)), float(record["prediction"]))
        arm.versions[str(record.get("model_version"))] += 1
        (arm.shadow if record.get("shadow") else arm.served).add(key[0])
        latency = record.get("latency_s")
        if isinstance(latency, int | float):
            arm.latency.setdefault(key[0], float(latency))
    return _Joined(arms, actuals, ignored)


@dataclass(frozen=True)
class _Observations:
    """Per-house errors of one arm (or of both arms on the same houses), in time order."""

    keys: list[Key]
    abs_error: np.ndarray
    ape: np.ndarray
    within: np.ndarray  # |error| <= tolerance * |actual|

    def __len__(self) -> int:
        return len(self.keys)

    def head(self, n: int) -> _Observations:
        return _Observations(self.keys[:n], self.abs_error[:n], self.ape[:n], self.within[:n])


def _observations(
    arm: _Arm, actuals: dict[Key, float], tolerance: float, keys: list[Key] | None = None
) -> _Observations:
    if keys is None:
        keys = sorted((k for k in arm.predictions if k in actuals), key=lambda k: arm.predictions[k][0])
    predicted = np.array([arm.predictions[k][1] for k in keys], dtype=np.float64)
    actual = np.array([actuals[k] for k in keys], dtype=np.float64)
    abs_error = np.abs(predicted - actual)
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.where(actual != 0, abs_error / np.abs(actual), np.nan)
    return _Observations(keys, abs_error, ape, abs_error <= tolerance * np.abs(actual))


# --- per-variant summary --------------------------------------------------------------------------------


def _round(value: float | None, digits: int = 6) -> float | None:
    """A JSON-safe number: None for missing or infinite values (JSON has no Infinity)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _variant_summary(
    arm: _Arm, obs: _Observations, n_total: int, error_reasons: tuple[str, ...]
) -> VariantSummary:
    latencies = np.array(list(arm.latency.values()), dtype=np.float64)
    scored = len(arm.served | arm.shadow)
    server_errors = sum(arm.errors[r] for r in error_reasons)
    attempts = scored + server_errors
    has_obs = len(obs) > 0
    return VariantSummary(
        model_versions=[v for v, _ in arm.versions.most_common()],
        requests=len(arm.served),
        shadow_requests=len(arm.shadow - arm.served),
        n=n_total,
        n_analysed=len(obs),
        mae=_round(float(obs.abs_error.mean())) if has_obs else None,
        mdape=_round(float(np.nanmedian(obs.ape))) if has_obs else None,
        ppe10=_round(float(obs.within.mean())) if has_obs else None,
        latency_p50_ms=_round(float(np.quantile(latencies, 0.5)) * 1e3, 4) if len(latencies) else None,
        latency_p95_ms=_round(float(np.quantile(latencies, 0.95)) * 1e3, 4) if len(latencies) else None,
        server_errors=server_errors,
        error_rate=_round(server_errors / attempts) if attempts else None,
        errors_by_reason=dict(sorted(arm.errors.items())),
        duplicate_predictions=arm.duplicates,
    )


# --- primary decision -----------------------------------------------------------------------------------


def _primary(
    champion: _Observations,
    challenger: _Observations,
    paired: bool,
    params: AbTestParams,
    plan: Plan,
) -> PrimaryTest:
    """Test mean |error| (challenger - champion) = 0: Welch or paired t-test + bootstrap CI, and mSPRT."""
    level = 1 - params.alpha
    a, b = champion.abs_error, challenger.abs_error
    if paired:
        differences = b - a
        outcome = stats.paired_t(differences)
        ci = stats.bootstrap_paired_ci(differences, level, params.bootstrap_resamples, params.seed)
        variance = float(np.var(differences, ddof=1)) / len(differences) if len(differences) > 1 else 0.0
        test = "paired_t"
    else:
        outcome = stats.welch_t(a, b)
        ci = stats.bootstrap_diff_ci(a, b, level, params.bootstrap_resamples, params.seed)
        variance = float(np.var(a, ddof=1)) / len(a) + float(np.var(b, ddof=1)) / len(b)
        test = "welch_t"
    difference = float(b.mean() - a.mean())
    sequential = stats.msprt(difference, variance, tau=plan.delta, alpha=params.alpha)
    if params.method == "msprt":
        # Only the always-valid p-value and interval may be read at an interim look.
        significant = sequential.p_value <= params.alpha
        decided_by = "msprt"
    else:
        # Both the t-test and the bootstrap interval must agree; they only disagree on borderline evidence.
        significant = outcome.p_value < params.alpha and (ci[1] < 0 or ci[0] > 0)
        decided_by = f"{test} + bootstrap CI"
    direction = "none"
    if significant:
        direction = "challenger_better" if difference < 0 else "challenger_worse"
    champion_mae = float(a.mean())
    return PrimaryTest(
        metric="mae_difference (challenger - champion)",
        test=test,
        decided_by=decided_by,
        n_champion=len(a),
        n_challenger=len(b),
        mae_champion=_round(champion_mae),
        mae_challenger=_round(float(b.mean())),
        difference=_round(difference),
        relative_difference=_round(difference / champion_mae) if champion_mae > 0 else None,
        statistic=_round(outcome.statistic, 4),
        df=_round(outcome.df, 1) if outcome.df is not None else None,
        p_value=outcome.p_value,
        ci_level=level,
        ci_low=_round(ci[0]),
        ci_high=_round(ci[1]),
        ci_method=f"percentile bootstrap, {params.bootstrap_resamples} resamples, seed {params.seed}",
        msprt=MsprtSummary(
            tau=_round(sequential.tau),
            likelihood_ratio=_round(sequential.likelihood_ratio, 12),
            p_value=sequential.p_value,
            ci_low=_round(sequential.ci[0]),
            ci_high=_round(sequential.ci[1]),
        ),
        alpha=params.alpha,
        significant=significant,
        direction=direction,
    )


# --- guardrails -----------------------------------------------------------------------------------------


def _guardrails(
    arms: dict[Variant, _Arm],
    obs: dict[Variant, _Observations],
    summaries: dict[Variant, VariantSummary],
    params: AbTestParams,
) -> list[Guardrail]:
    """One-sided "challenger significantly worse" tests, Bonferroni-corrected across enabled guardrails."""
    rails = params.guardrails
    enabled = [name for name in ("error_rate", "ppe10", "latency_p95") if getattr(rails, name)]
    if not enabled:
        return []
    alpha = (rails.alpha if rails.alpha is not None else params.alpha) / len(enabled)
    out: list[Guardrail] = []
    champ, chal = summaries[Variant.CHAMPION], summaries[Variant.CHALLENGER]
    if "error_rate" in enabled:
        n_ref = len(arms[Variant.CHAMPION].served | arms[Variant.CHAMPION].shadow) + champ.server_errors
        n_new = len(arms[Variant.CHALLENGER].served | arms[Variant.CHALLENGER].shadow) + chal.server_errors
        counts = (champ.server_errors, n_ref, chal.server_errors, n_new)
        out.append(
            _proportion_rail(
                "error_rate", champ.error_rate, chal.error_rate, counts, rails.error_rate_margin, alpha
            )
        )
    if "ppe10" in enabled:
        a, b = obs[Variant.CHAMPION], obs[Variant.CHALLENGER]
        # PPE10 worse = share of predictions *outside* +-10% larger.
        counts = (int((~a.within).sum()), len(a), int((~b.within).sum()), len(b))
        out.append(_proportion_rail("ppe10", champ.ppe10, chal.ppe10, counts, rails.ppe10_margin, alpha))
    if "latency_p95" in enabled:
        a_lat = np.array(list(arms[Variant.CHAMPION].latency.values()), dtype=np.float64)
        b_lat = np.array(list(arms[Variant.CHALLENGER].latency.values()), dtype=np.float64)
        latency = {
            "name": "latency_p95",
            "champion": champ.latency_p95_ms,
            "challenger": chal.latency_p95_ms,
            "test": f"bootstrap lower bound of the p95 ratio (tolerance +{rails.latency_p95_tolerance:.0%})",
            "alpha": alpha,
        }
        if min(len(a_lat), len(b_lat)) < params.min_n:
            out.append(Guardrail(**latency, passed=True, note="too few latencies to test"))
        else:
            lower = stats.bootstrap_quantile_ratio_lower(
                a_lat, b_lat, 0.95, 1 - alpha, params.bootstrap_resamples, params.seed + 1
            )
            bound = _round(lower, 4)
            out.append(
                Guardrail(**latency, ratio_lower_bound=bound, passed=lower <= 1 + rails.latency_p95_tolerance)
            )
    return out


def _proportion_rail(
    name: Literal["error_rate", "ppe10"],
    champion: float | None,
    challenger: float | None,
    counts: tuple[int, int, int, int],
    margin: float,
    alpha: float,
) -> Guardrail:
    """One-sided two-proportion test that the challenger's share of bad outcomes is larger (by ``margin``);
    ``counts``: (bad, total) of the champion, then of the challenger."""
    test = stats.two_proportion_worse(*counts, margin)
    return Guardrail(
        name=name,
        champion=champion,
        challenger=challenger,
        test=f"one-sided two-proportion z (margin {margin:g})",
        p_value=test.p_value,
        alpha=alpha,
        passed=test.p_value >= alpha,
    )


# --- the verdict ----------------------------------------------------------------------------------------


def analyze(
    records: Iterable[dict[str, Any]],
    params: AbTestParams,
    plan: Plan | None = None,
    source: str | None = None,
) -> AbVerdict:
    """Join the records, compute per-variant metrics and decide (see the module docstring)."""
    plan = plan or make_plan(params)
    joined = join(records)
    arms, tolerance = joined.arms, params.ppe_tolerance
    all_obs = {v: _observations(arms[v], joined.actuals, tolerance) for v in Variant}
    paired_keys = sorted(
        set(all_obs[Variant.CHAMPION].keys) & set(all_obs[Variant.CHALLENGER].keys),
        key=lambda k: arms[Variant.CHAMPION].predictions[k][0],
    )
    paired = params.design == "paired" or (params.design == "auto" and len(paired_keys) >= params.min_n)
    if paired:
        all_obs = {v: _observations(arms[v], joined.actuals, tolerance, paired_keys) for v in Variant}
    horizon = (
        plan.n_per_arm
        if params.method == "fixed_horizon"
        else math.ceil(plan.n_per_arm * params.msprt_max_n_factor)
    )
    n_have = min(len(all_obs[Variant.CHAMPION]), len(all_obs[Variant.CHALLENGER]))
    # Fixed horizon: analyse exactly the first N per arm, so re-running later cannot change the verdict.
    analysed = all_obs
    if params.method == "fixed_horizon" and n_have >= horizon:
        analysed = {v: all_obs[v].head(horizon) for v in Variant}
    summaries = {
        v: _variant_summary(arms[v], analysed[v], len(all_obs[v]), params.guardrails.error_reasons)
        for v in Variant
    }
    warnings = _log_warnings(joined, summaries)
    srm = None if paired else _sample_ratio(arms, params, warnings)

    primary: PrimaryTest | None = None
    guardrails: list[Guardrail] = []
    enough_for_tests = n_have >= params.min_n
    # Peeking guard: with a fixed horizon the primary test is not even computed before the horizon. Guardrails
    # are safety checks and may be watched at any time (extra looks only make them stricter).
    if enough_for_tests and (params.method == "msprt" or n_have >= horizon):
        primary = _primary(analysed[Variant.CHAMPION], analysed[Variant.CHALLENGER], paired, params, plan)
    if enough_for_tests:
        guardrails = _guardrails(arms, analysed, summaries, params)

    progress = f"{n_have} of {horizon} {'pairs' if paired else 'per arm'}"
    failed = [rail.name for rail in guardrails if not rail.passed]
    if not enough_for_tests:
        missing = [v.value for v in Variant if not len(all_obs[v])]
        why = f"no {' or '.join(missing)} observations with feedback yet; " if missing else ""
        verdict, reason = Verdict.COLLECTING, f"{why}{progress} (minimum {params.min_n} before any test)"
    elif params.method == "fixed_horizon" and n_have < horizon:
        verdict = Verdict.COLLECTING
        reason = f"fixed horizon not reached: {progress}; no test is read before the horizon (peeking guard)"
    elif primary is not None and primary.direction == "challenger_better":
        if failed:
            verdict = Verdict.CHAMPION_WINS
            reason = (
                f"challenger has a lower MAE but fails guardrail(s) {', '.join(failed)}: keep the champion"
            )
        else:
            verdict = Verdict.CHALLENGER_WINS
            reason = "challenger's MAE is significantly lower and no guardrail failed"
    elif primary is not None and primary.direction == "challenger_worse":
        verdict, reason = Verdict.CHAMPION_WINS, "challenger's MAE is significantly higher"
    elif params.method == "msprt" and n_have < horizon:
        verdict = Verdict.COLLECTING
        reason = f"mSPRT not conclusive yet ({progress}; gives up at {horizon})"
    else:
        verdict, reason = Verdict.NO_DIFFERENCE, "no significant MAE difference at the horizon"
        if failed:
            warnings.append(f"guardrail(s) {', '.join(failed)} significantly worse for the challenger")
    if primary is not None and verdict is not Verdict.COLLECTING:
        p = primary.msprt.p_value if params.method == "msprt" else primary.p_value
        reason += (
            f" (MAE {format_number(primary.mae_challenger)} vs {format_number(primary.mae_champion)}, "
            f"difference {format_number(primary.difference)}, p = {p:.3g})"
        )
    return AbVerdict(
        verdict=verdict,
        reason=reason,
        generated_at=datetime.now(UTC).replace(microsecond=0),
        source=source,
        method=params.method,
        design="paired" if paired else "unpaired",
        plan=PlanAtHorizon(**plan.model_dump(), horizon_per_arm=horizon, summary=plan.describe()),
        progress=Progress(
            n_champion=len(all_obs[Variant.CHAMPION]),
            n_challenger=len(all_obs[Variant.CHALLENGER]),
            n_pairs=len(paired_keys),
            required_per_arm=horizon,
            share=_round(min(1.0, n_have / horizon), 4),
        ),
        variants=Arms(champion=summaries[Variant.CHAMPION], challenger=summaries[Variant.CHALLENGER]),
        primary=primary,
        guardrails=guardrails,
        sample_ratio=srm,
        warnings=warnings,
        params=params,
    )


def _log_warnings(joined: _Joined, summaries: dict[Variant, VariantSummary]) -> list[str]:
    """What in the log itself deserves a look: unknown variants, reused request ids, mixed model versions."""
    warnings = [
        f"{count} record(s) of unknown variant {name!r} ignored"
        for name, count in joined.ignored_variants.items()
    ]
    for v in Variant:
        if joined.arms[v].duplicates:
            warnings.append(
                f"{v}: {joined.arms[v].duplicates} duplicate prediction(s) for the same "
                "(request_id, instance) ignored"
            )
    for v in Variant:
        if len(summaries[v].model_versions) > 1:
            warnings.append(f"{v}: several model versions in the log {summaries[v].model_versions}")
    return warnings


def _sample_ratio(arms: dict[Variant, _Arm], params: AbTestParams, warnings: list[str]) -> SampleRatio | None:
    """The split the router produced against its configured share (a mismatch warns)."""
    if params.expected_challenger_share is None:
        return None
    served = {v.value: len(arms[v].served) for v in Variant}
    p_srm = stats.sample_ratio_p_value(
        served[Variant.CHAMPION], served[Variant.CHALLENGER], params.expected_challenger_share
    )
    if p_srm < params.srm_alpha:
        warnings.append(
            f"sample ratio mismatch: served {served} vs expected challenger share "
            f"{params.expected_challenger_share:g} (chi-square p = {p_srm:.2g}); check routing and "
            "logging before trusting this verdict"
        )
    return SampleRatio(
        expected_challenger_share=params.expected_challenger_share,
        served=served,  # type: ignore[arg-type]  # validated into Variant keys
        p_value=p_srm,
    )


def analyze_log(path: Path, params: AbTestParams, plan: Plan | None = None) -> AbVerdict:
    """:func:`analyze` over an inference log file or directory."""
    from housing.inference_log import iter_records

    path = Path(path)
    if not path.exists():
        raise AbTestError(f"{path}: inference log not found (file or directory of inference-*.jsonl)")
    try:
        return analyze(iter_records(path), params, plan, source=str(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise AbTestError(f"{path}: a record does not follow the inference-log contract ({exc!r})") from None


def estimate_planning_inputs(
    path: Path, params: AbTestParams, variant: Variant = Variant.CHAMPION
) -> PilotEstimate:
    """MAE and sd of absolute errors of one variant in a (pilot) log, to plan the next experiment."""
    from housing.inference_log import iter_records

    if not Path(path).exists():
        raise AbTestError(f"{path}: inference log not found")
    joined = join(iter_records(path))
    obs = _observations(joined.arms[variant], joined.actuals, params.ppe_tolerance)
    if len(obs) < 2:
        raise AbTestError(f"{path}: fewer than 2 {variant} predictions with feedback; cannot estimate sd")
    return PilotEstimate(mae=float(obs.abs_error.mean()), sd=float(obs.abs_error.std(ddof=1)), n=len(obs))
