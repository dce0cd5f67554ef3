"""What ``housing loop`` prints after each step: lines made from the step's typed result."""

from __future__ import annotations

from pathlib import Path

from housing.experiments.abtest_report import format_number
from housing.experiments.loop_steps import (
    AbPlanStep,
    AbTraffic,
    ChampionTraffic,
    DriftCheck,
    LoopData,
    PromotionStep,
    TrainedModel,
)
from housing.experiments.traffic import TrafficSummary
from housing.experiments.verdict import AbVerdict
from housing.server_process import VariantScores
from housing.variants import Variant


def _mae(scores: VariantScores | None) -> str:
    return format_number(scores.mae if scores else None, 3)


def _traffic(summary: TrafficSummary) -> str:
    return f"{summary.ok} requests at {summary.achieved_rate} req/s"


def data(result: LoopData) -> list[str]:
    rows = result.rows
    return [
        f"  train {rows['train']} rows (reference sample {rows['reference']}); future production: drift pool "
        f"{rows['drift_pool']}, A/B pool {rows['ab_pool']} houses (disjoint; the A/B pool before the shift "
        "is the export holdout)"
    ]


def champion(model: TrainedModel, tracking_uri: str) -> list[str]:
    return [
        f"  {model.model_version}: {model.rows} rows, fit {model.fit_seconds:.1f} s, holdout MAE "
        f"{model.holdout_mae:.3f} R² {model.holdout_r2:.3f}; MLflow version {_version(model)} "
        f"@{Variant.CHAMPION} ({tracking_uri})"
    ]


def champion_traffic(phase: ChampionTraffic, model: TrainedModel) -> list[str]:
    lines = []
    if phase.baseline_traffic is not None:
        lines.append(
            f"  baseline: {_traffic(phase.baseline_traffic)}, {phase.baseline_traffic.feedback.accepted} "
            f"labels; MAE gauge {_mae(phase.baseline_gauges)}"
        )
    drifted = phase.drift_traffic
    lines.append(
        f"  drifted: {_traffic(drifted)}, {drifted.feedback.accepted} labels after "
        f"{drifted.config.feedback_delay:g} s; MAE gauge {_mae(phase.drift_gauges)} "
        f"(R² {format_number(phase.drift_gauges.r2, 3)}); training-time holdout MAE {model.holdout_mae:.3f}"
    )
    return lines


def drift(check: DriftCheck) -> list[str]:
    lines = [
        f"  window {check.window_rows} rows ({check.labelled_rows} labelled): drift score "
        f"{check.drift_score:.3f} (threshold {check.threshold}), drifted "
        f"{', '.join(check.drifted_features) or 'none'} -> retrain_recommended="
        f"{str(check.retrain_recommended).lower()}; MAE gauge {format_number(check.mae_gauge_before, 3)} -> "
        f"{format_number(check.mae_gauge_after, 3)}"
    ]
    if not check.retrain_recommended:
        lines.append("  no retraining recommended: the loop stops here (nothing to test)")
    return lines


def challenger(model: TrainedModel, champion_model: TrainedModel, labelled_rows: int) -> list[str]:
    return [
        f"  {model.model_version}: {model.rows} rows ({labelled_rows} from the window), fit "
        f"{model.fit_seconds:.1f} s; holdout (pre-shift A/B pool) MAE {model.holdout_mae:.3f} vs champion "
        f"{champion_model.holdout_mae:.3f} (pre-shift world, not what the A/B test measures)"
    ]


def _version(model: TrainedModel) -> str:
    return model.registry.version if model.registry else "n/a"


def registered(model: TrainedModel) -> list[str]:
    return [f"  MLflow version {_version(model)} @{Variant.CHALLENGER} ({model.model_version})"]


def plan(step: AbPlanStep) -> list[str]:
    pilot = step.pilot
    lines = [
        f"  pilot: MAE {pilot.mae:.3f}, sd of |error| {pilot.sd:.3f} over {pilot.n} labelled requests",
        f"  {step.plan.describe()}",
    ]
    if not step.reaches_horizon:
        lines.append(
            f"  warning: {step.requests_planned} A/B houses may not reach the horizon "
            f"(~{step.requests_needed} requests needed): the verdict may stay 'collecting'"
        )
    lines.append(f"  sending {step.requests_planned} requests (one new house each)")
    return lines


def ab_traffic(phase: AbTraffic) -> list[str]:
    summary = phase.traffic
    return [
        f"  {_traffic(summary)}, variants {summary.variants}, {summary.feedback.accepted} labels; MAE "
        f"gauges: champion {_mae(phase.gauges.get(Variant.CHAMPION))}, challenger "
        f"{_mae(phase.gauges.get(Variant.CHALLENGER))}"
    ]


def verdict(result: AbVerdict, reports_dir: Path) -> list[str]:
    lines = [f"  {result.verdict.value}: {result.reason}"]
    primary = result.primary
    if primary is not None:
        rails = ", ".join(f"{rail.name} {'ok' if rail.passed else 'FAILED'}" for rail in result.guardrails)
        lines.append(
            f"  first {primary.n_champion}/{primary.n_challenger} per arm: MAE champion "
            f"{format_number(primary.mae_champion)}, challenger {format_number(primary.mae_challenger)}, "
            f"difference {format_number(primary.difference)} ({primary.ci_level:.0%} CI "
            f"{format_number(primary.ci_low)} .. {format_number(primary.ci_high)}), {primary.test} "
            f"p = {primary.p_value:.3g}; guardrails {rails}"
        )
    lines += [f"  warning: {warning}" for warning in result.warnings]
    lines.append(f"  -> {reports_dir / 'abtest.json'}, {reports_dir / 'abtest.md'}")
    return lines


def promotion(step: PromotionStep, result: AbVerdict) -> list[str]:
    if not step.promoted:
        return [f"  not promoted: the verdict is {result.verdict.value!r}; @{Variant.CHAMPION} stays"]
    lines = [
        f"  @{Variant.CHAMPION} -> MLflow version {step.champion_version} ({step.model_version}), previous "
        f"{step.previous}; rollout change to review:"
    ]
    return lines + [f"    {line}" for line in (step.rollout or "").splitlines()]
