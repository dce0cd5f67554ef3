"""Typed settings of the champion/challenger analysis (the ``abtest:`` section of params.yaml).

Kept in a module of its own with no heavy imports so that ``housing.config`` can import it without loading
numpy/scipy. Defaults are justified in docs/abtest.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from housing.strict import Strict as _Strict


class GuardrailParams(_Strict):
    """Metrics the challenger must not be significantly worse on (one-sided tests, Bonferroni-corrected)."""

    error_rate: bool = True
    ppe10: bool = True
    latency_p95: bool = True
    alpha: float | None = Field(None, gt=0, lt=0.5)  # family-wise; None = the primary alpha
    error_rate_margin: float = Field(0.0, ge=0, le=1)  # absolute increase tolerated
    ppe10_margin: float = Field(0.0, ge=0, le=1)  # absolute drop tolerated
    latency_p95_tolerance: float = Field(0.10, ge=0)  # relative p95 increase tolerated (0.10 = +10%)
    # Error-log reasons that are the model server's fault; 4xx reasons (bad client input) are not counted.
    error_reasons: tuple[str, ...] = ("injected", "model_error")


class AbTestParams(_Strict):
    # Two-sided false-positive rate of the primary test: 1% per direction. Below the conventional 0.05 so
    # that identical models are called no_difference in >= 95% of repeated experiments with margin.
    alpha: float = Field(0.02, gt=0, lt=0.5)
    power: float = Field(0.80, gt=0, lt=1)
    # Minimum detectable effect on MAE: relative to planning_mae (0.10 = 10%) or absolute ($100k units).
    mde: float = Field(0.10, gt=0)
    mde_kind: Literal["relative", "absolute"] = "relative"
    # Planning inputs measured on the holdout with the current champion (docs/abtest.md: re-estimating).
    planning_mae: float = Field(0.27, gt=0)
    planning_sd: float = Field(0.32, gt=0)  # standard deviation of the absolute errors
    min_n: int = Field(100, ge=2)  # never decide below this many observations per arm (CLT)
    bootstrap_resamples: int = Field(2000, ge=100)
    seed: int = 42
    design: Literal["auto", "paired", "unpaired"] = "auto"  # auto: paired when both scored the same houses
    method: Literal["fixed_horizon", "msprt"] = "fixed_horizon"
    msprt_max_n_factor: float = Field(2.0, ge=1)  # mSPRT gives up (no_difference) at this x fixed-horizon N
    # The router's configured challenger share; when set, a sample ratio mismatch (p < srm_alpha) warns.
    expected_challenger_share: float | None = Field(None, gt=0, lt=1)
    srm_alpha: float = Field(0.001, gt=0, lt=0.5)
    ppe_tolerance: float = Field(0.10, gt=0, lt=1)  # PPE10: share of predictions within +-10% of the actual
    guardrails: GuardrailParams = GuardrailParams()
