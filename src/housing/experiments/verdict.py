"""The A/B test's typed outputs: the plan (``housing abtest plan --out``) and the verdict (``housing abtest
analyze``), written as JSON from these models and read back into them (promotion, the report, the loop).

Field meanings: docs/abtest.md. Every difference is *challenger minus champion*.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import ValidationError

from housing.config import AbTestParams
from housing.errors import HousingError
from housing.strict import Strict
from housing.variants import Variant


class AbTestError(HousingError):
    """An A/B input (log, plan, verdict file) is missing or malformed, or an action does not fit it."""


class Verdict(StrEnum):
    CHALLENGER_WINS = "challenger_wins"
    CHAMPION_WINS = "champion_wins"
    NO_DIFFERENCE = "no_difference"
    COLLECTING = "collecting"


class Plan(Strict):
    """The fixed horizon: observations per arm needed to detect ``delta`` on MAE with the given power."""

    n_per_arm: int
    n_formula: int  # before raising it to params.min_n
    delta: float  # absolute MAE difference to detect ($100k)
    mde: float
    mde_kind: Literal["relative", "absolute"]
    baseline_mae: float
    sd: float
    alpha: float
    power: float

    def describe(self) -> str:
        effect = (
            f"{self.mde:.0%} of MAE {self.baseline_mae:.3f} = {self.delta:.4f}"
            if self.mde_kind == "relative"
            else f"{self.delta:.4f}"
        )
        floor = (
            f", raised from {self.n_formula} to the minimum sample" if self.n_per_arm > self.n_formula else ""
        )
        return (
            f"need {self.n_per_arm} per arm (with ground-truth feedback) to detect an MAE difference of "
            f"{effect} with power {self.power:.0%} at alpha {self.alpha:g} two-sided "
            f"(sd of absolute errors {self.sd:.3f}{floor})"
        )


class PilotEstimate(Strict):
    """Planning inputs measured on a pilot log: one variant's MAE and sd of absolute errors."""

    mae: float
    sd: float
    n: int


class PlanAtHorizon(Plan):
    """The plan as the verdict used it: the horizon its method reads at (mSPRT: the give-up point)."""

    horizon_per_arm: int
    summary: str


class Progress(Strict):
    n_champion: int  # observations with feedback
    n_challenger: int
    n_pairs: int  # houses both variants scored (shadow mode)
    required_per_arm: int
    share: float | None


class VariantSummary(Strict):
    model_versions: list[str]  # most frequent first
    requests: int  # answered by this variant
    shadow_requests: int
    n: int  # observations with feedback
    n_analysed: int  # of which analysed (a fixed horizon stops at N)
    mae: float | None
    mdape: float | None
    ppe10: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    server_errors: int
    error_rate: float | None
    errors_by_reason: dict[str, int]
    duplicate_predictions: int


class Arms(Strict):
    champion: VariantSummary
    challenger: VariantSummary


class MsprtSummary(Strict):
    tau: float | None
    likelihood_ratio: float | None
    p_value: float
    ci_low: float | None
    ci_high: float | None


class PrimaryTest(Strict):
    """The one decision metric: mean absolute error, challenger minus champion."""

    metric: str
    test: Literal["welch_t", "paired_t"]
    decided_by: str
    n_champion: int
    n_challenger: int
    mae_champion: float | None
    mae_challenger: float | None
    difference: float | None
    relative_difference: float | None
    statistic: float | None
    df: float | None
    p_value: float
    ci_level: float
    ci_low: float | None
    ci_high: float | None
    ci_method: str
    msprt: MsprtSummary
    alpha: float
    significant: bool
    direction: Literal["none", "challenger_better", "challenger_worse"]


class Guardrail(Strict):
    """A one-sided "challenger significantly worse" check; it can only veto a promotion."""

    name: Literal["error_rate", "ppe10", "latency_p95"]
    champion: float | None
    challenger: float | None
    test: str
    alpha: float  # Bonferroni share of the family-wise alpha
    passed: bool
    p_value: float | None = None  # the proportion tests
    ratio_lower_bound: float | None = None  # latency: bootstrap lower bound of the p95 ratio
    note: str | None = None


class SampleRatio(Strict):
    expected_challenger_share: float
    served: dict[Variant, int]
    p_value: float


class AbVerdict(Strict):
    """``reports/abtest.json``: the verdict and every number behind it."""

    verdict: Verdict
    reason: str
    generated_at: datetime
    source: str | None
    method: Literal["fixed_horizon", "msprt"]
    design: Literal["paired", "unpaired"]
    plan: PlanAtHorizon
    progress: Progress
    variants: Arms
    primary: PrimaryTest | None  # None until the test may be read (peeking guard)
    guardrails: list[Guardrail]
    sample_ratio: SampleRatio | None
    warnings: list[str]
    params: AbTestParams

    def challenger_version(self, source: Path) -> str:
        """The one model version the challenger arm served (what a promotion moves @champion to)."""
        versions = self.variants.challenger.model_versions
        if len(versions) != 1:
            raise AbTestError(
                f"{source}: variants.challenger.model_versions must name exactly one version, got {versions}"
            )
        return versions[0]


def write_json(path: Path, result: Strict) -> None:
    """A plan or a verdict as strict JSON (no NaN/Infinity), written atomically."""
    from housing.artifact import atomic_write_bytes

    atomic_write_bytes(path, (result.model_dump_json(indent=2) + "\n").encode())


ModelT = TypeVar("ModelT", bound=Strict)


def read_json(path: Path, model: type[ModelT], written_by: str) -> ModelT:
    """Read a plan or a verdict back; errors name the file, the field and the command that writes it."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise AbTestError(f"{path}: file not found (run `{written_by}` first)") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise AbTestError(f"{path}: not valid JSON ({first['msg']})") from None
        where = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise AbTestError(
            f"{path}: field {where!r}: {first['msg']} (not a file written by `{written_by}`)"
        ) from None


def read_plan(path: Path) -> Plan:
    return read_json(path, Plan, "housing abtest plan --out")


def read_verdict(path: Path) -> AbVerdict:
    return read_json(path, AbVerdict, "housing abtest analyze")
