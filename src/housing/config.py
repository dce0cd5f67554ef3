"""Typed, strict model of ``params.yaml``: the only place that reads it.

Every section mirrors a pipeline stage. Unknown keys are rejected so that a typo such as
``train.hgb.learnig_rate`` fails loudly with the key's full path instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from housing.errors import ConfigError
from housing.strict import Strict

DEFAULT_PARAMS_PATH = Path("params.yaml")

FEATURES: tuple[str, ...] = (
    "MedInc",
    "HouseAge",
    "AveRooms",
    "AveBedrms",
    "Population",
    "AveOccup",
    "Latitude",
    "Longitude",
)
TARGET = "MedHouseVal"


# --- data -----------------------------------------------------------------------------------------------


class DataParams(Strict):
    raw_path: Path = Path("data/raw/california_housing.csv")
    production_window_path: Path = Path("data/production/window.csv")
    features: tuple[str, ...] = FEATURES
    target: str = TARGET


# --- validate -------------------------------------------------------------------------------------------


class ColumnRule(Strict):
    dtype: Literal["float", "int"] = "float"
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> ColumnRule:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class ValidateParams(Strict):
    columns: dict[str, ColumnRule]
    min_rows: int = Field(1000, ge=1)
    max_missing_share: float = Field(0.0, ge=0, le=1)
    max_duplicate_share: float = Field(0.0, ge=0, le=1)
    # A value is an outlier when its robust z-score |x - median| / (1.4826 * MAD) exceeds this.
    outlier_robust_z: float = Field(10.0, gt=0)
    max_outlier_share: float = Field(0.02, ge=0, le=1)
    max_examples: int = Field(5, ge=1)


# --- split ----------------------------------------------------------------------------------------------


class SplitParams(Strict):
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    reference_rows: int = Field(5000, ge=100)
    # Retraining: labelled rows of the production window (ground truth from feedback) that are new houses
    # join the training split; the test split stays the raw data set's, so models remain comparable.
    train_on_production_window: bool = True


# --- train ----------------------------------------------------------------------------------------------


class HGBParams(Strict):
    learning_rate: float = Field(0.1, gt=0, le=1)
    max_iter: int = Field(300, ge=1)
    max_leaf_nodes: int = Field(31, ge=2)
    max_depth: int | None = Field(None, ge=1)
    min_samples_leaf: int = Field(20, ge=1)
    l2_regularization: float = Field(0.0, ge=0)
    max_bins: int = Field(255, ge=2, le=255)
    early_stopping: bool = False


class RandomForestParams(Strict):
    n_estimators: int = Field(200, ge=1)
    max_depth: int | None = Field(None, ge=1)
    min_samples_leaf: int = Field(1, ge=1)
    max_features: float = Field(1.0, gt=0, le=1)


class TuneParams(Strict):
    """Randomised search over the HGB space, cross-validated on the training split only."""

    enabled: bool = False
    n_iter: int = Field(12, ge=1)
    cv_folds: int = Field(3, ge=2)
    learning_rate: tuple[float, ...] = (0.03, 0.05, 0.1)
    max_iter: tuple[int, ...] = (300, 600, 1000)
    max_leaf_nodes: tuple[int, ...] = (31, 63, 127)
    min_samples_leaf: tuple[int, ...] = (10, 20, 40)
    l2_regularization: tuple[float, ...] = (0.0, 0.1, 1.0)


class TrainParams(Strict):
    model: Literal["hgb", "random_forest"] = "hgb"
    seed: int = 42
    hgb: HGBParams = HGBParams()
    random_forest: RandomForestParams = RandomForestParams()
    tune: TuneParams = TuneParams()


# --- export ---------------------------------------------------------------------------------------------


class ExportParams(Strict):
    max_abs_diff: float = Field(1e-4, gt=0)
    opset: int = Field(17, ge=13)


# --- evaluate -------------------------------------------------------------------------------------------


class GateParams(Strict):
    r2_min: float = 0.75
    mae_max: float = Field(0.40, gt=0)


class CostParams(Strict):
    """Business cost of a valuation error, in dollars per $100k of error (the target's unit).

    Over-valuation (predicted > actual) costs a lender more than under-valuation, hence asymmetric.
    """

    over_valuation: float = Field(15000.0, ge=0)
    under_valuation: float = Field(10000.0, ge=0)


class EvaluateParams(Strict):
    gates: GateParams = GateParams()
    ppe_tolerances: tuple[float, ...] = (0.10, 0.20)
    income_bands: tuple[float, ...] = (0.0, 2.5, 4.5, 6.0, 1e9)
    region_radius_km: float = Field(100.0, gt=0)
    cost: CostParams = CostParams()
    importance_repeats: int = Field(3, ge=1)
    plot_sample: int = Field(2000, ge=100)


# --- drift ----------------------------------------------------------------------------------------------


StatTest = Literal["ks", "chi2", "psi"]


class DriftParams(Strict):
    threshold: float = Field(0.3, gt=0, le=1)
    p_value: float = Field(0.05, gt=0, lt=1)
    psi_threshold: float = Field(0.2, gt=0)
    psi_bins: int = Field(10, ge=2)
    categorical: tuple[str, ...] = ()
    # Per-feature override of the default test (ks for numeric, chi2 for categorical).
    tests: dict[str, StatTest] = Field(default_factory=dict)
    evidently_report: bool = True


# --- register -------------------------------------------------------------------------------------------


class PromoteRule(Strict):
    """The challenger replaces the champion only if it is at least as good on the same holdout."""

    metric: Literal["mae", "rmse", "mdape"] = "mae"
    tolerance: float = Field(0.0, ge=0)
    require_same_holdout: bool = True


class RegisterParams(Strict):
    model_name: str = Field("california-housing", min_length=1)
    experiment: str = Field("housing", min_length=1)
    promote: PromoteRule = PromoteRule()


# --- abtest (champion/challenger analysis; docs/abtest.md justifies each default) ----------------------


class GuardrailParams(Strict):
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


class AbTestParams(Strict):
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


class Params(Strict):
    """The whole of ``params.yaml``. ``validate`` and ``register`` clash with pydantic names, hence the
    trailing underscore on the attribute; the YAML keys are unchanged."""

    data: DataParams = DataParams()
    validate_: Annotated[ValidateParams, Field(alias="validate")]
    split: SplitParams = SplitParams()
    train: TrainParams = TrainParams()
    export: ExportParams = ExportParams()
    evaluate: EvaluateParams = EvaluateParams()
    drift: DriftParams = DriftParams()
    register_: Annotated[RegisterParams, Field(alias="register")] = RegisterParams()
    abtest: AbTestParams = AbTestParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        missing = [f for f in self.data.features if f not in self.validate_.columns]
        if missing:
            raise ValueError(f"validate.columns has no rule for feature(s) {missing}")
        if self.data.target not in self.validate_.columns:
            raise ValueError(f"validate.columns has no rule for the target {self.data.target!r}")
        unknown = [f for f in (*self.drift.categorical, *self.drift.tests) if f not in self.data.features]
        if unknown:
            raise ValueError(f"drift refers to unknown feature(s) {unknown}")
        return self


def validate_params(raw: object, source: str) -> Params:
    """Validate a parsed ``params.yaml`` document (or the sections a Kubeflow run was given); raise
    :class:`ConfigError` naming ``source``, each offending key and the rule it broke."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(source, exc)) from None


def _format_error(source: str, err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "<root>"
        reason = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{source}: {key}: {reason}")
    return "\n".join(lines)


def load_params(path: Path | str = DEFAULT_PARAMS_PATH) -> Params:
    """Read and validate ``params.yaml``; raise :class:`ConfigError` naming the offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return validate_params(raw, str(path))
