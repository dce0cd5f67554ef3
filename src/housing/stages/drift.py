"""Drift stage: compare the training reference sample with a production window, feature by feature.

Native tests (the decision): two-sample Kolmogorov-Smirnov for numeric features, Pearson chi-square on the
2 x k contingency table of category counts for categorical ones, and the Population Stability Index (PSI)
for every feature, which decides instead wherever ``drift.tests[feature] == "psi"``. A feature drifts when
p < ``drift.p_value`` (ks, chi2) or PSI >= ``drift.psi_threshold``. The drift score is the share of drifted
features and ``retrain_recommended = drift_score >= drift.threshold`` (">=", like Evidently's dataset
drift rule: at the seed 0.3 with 8 features that means 3 or more drifted features).

Evidently is run next to it with the same method and threshold set explicitly per column, only to render the
HTML report and to cross-check the verdicts (``drift.json["evidently"]["agrees"]``).
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from housing import paths
from housing.artifact import atomic_write_bytes, atomic_write_json
from housing.config import DriftParams, Params, StatTest
from housing.errors import DataError
from housing.frames import read_csv
from housing.logwindow import read_window
from housing.results import DriftReport
from housing.stages import main

PSI_EPSILON = 1e-4
KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp uses its exact method up to here, the asymptotic one above
KS_NEGLIGIBLE_P = 1e-5  # at most; feature_drift uses min(this, drift.p_value / 1000)
PARALLEL_MIN_ROWS = 200_000  # rows on both sides from which features are tested in parallel threads
"""Share given to an empty bin so that PSI stays finite (ln(0) is undefined)."""

# Evidently's names for the native tests; thresholds are p-values for ks/chisquare, PSI values for psi.
EVIDENTLY_METHOD: dict[str, str] = {"ks": "ks", "chi2": "chisquare", "psi": "psi"}


@dataclass(frozen=True)
class FeatureDrift:
    test: StatTest
    statistic: float  # K-S D, chi-square statistic, or PSI for the psi test
    p_value: float | None  # None for the psi test
    psi: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "psi": self.psi,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class DriftResult:
    features: dict[str, FeatureDrift]
    threshold: float
    n_reference: int
    n_current: int

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, result in self.features.items() if result.drifted]

    @property
    def drift_score(self) -> float:
        return len(self.drifted_features) / len(self.features)

    @property
    def retrain_recommended(self) -> bool:
        return self.drift_score >= self.threshold

    def to_dict(self, evidently: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``reports/drift.json`` document (contract: docs/drift.md, "Outputs")."""
        return {
            "drift_score": self.drift_score,
            "threshold": self.threshold,
            "retrain_recommended": self.retrain_recommended,
            "drifted_features": self.drifted_features,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "features": {name: result.to_dict() for name, result in self.features.items()},
            "evidently": evidently,
        }


# --- the statistics -----------------------------------------------------------------------------------


def deciding_test(feature: str, cfg: DriftParams) -> StatTest:
    """The deciding test of a feature: the per-feature override, else chi2 (categorical) or ks."""
    return cfg.tests.get(feature, "chi2" if feature in cfg.categorical else "ks")


def ks_test(
    reference: np.ndarray, current: np.ndarray, negligible_p: float = KS_NEGLIGIBLE_P
) -> tuple[float, float]:
    """Two-sample, two-sided Kolmogorov-Smirnov: (D, p-value), as ``scipy.stats.ks_2samp`` computes them.

    Large samples (scipy's asymptotic regime) take a shortcut: D with scipy's own formula, and when the
    limiting Kolmogorov distribution already puts p below ``negligible_p`` that value is returned instead of
    scipy's finite-n ``kstwo.sf``, which is exact there but costs up to a second per feature at 1M rows and
    cannot change a verdict (the two agree to within a few percent, and callers pass a bound far below their
    decision threshold). Otherwise p is ``kstwo.sf`` exactly as scipy computes it.
    """
    from scipy.special import kolmogorov
    from scipy.stats import ks_2samp, kstwo

    n1, n2 = len(reference), len(current)
    if max(n1, n2) <= KS_EXACT_MAX_N or min(n1, n2) == 0:
        result = ks_2samp(reference, current)
        return float(result.statistic), float(result.pvalue)
    sorted1, sorted2 = np.sort(reference), np.sort(current)
    both = np.concatenate([sorted1, sorted2])
    diffs = (
        np.searchsorted(sorted1, both, side="right") / n1 - np.searchsorted(sorted2, both, side="right") / n2
    )
    d = float(max(np.clip(-diffs.min(), 0, 1), diffs.max()))
    larger, smaller = sorted([float(n1), float(n2)], reverse=True)
    en = larger * smaller / (larger + smaller)
    limit_p = float(kolmogorov(math.sqrt(en) * d))
    if limit_p < negligible_p:
        return d, limit_p
    return d, float(np.clip(kstwo.sf(d, np.round(en)), 0, 1))


def _category_counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    categories, codes = np.unique(np.concatenate([reference, current]), return_inverse=True)
    n_ref = len(reference)
    return (
        np.bincount(codes[:n_ref], minlength=len(categories)),
        np.bincount(codes[n_ref:], minlength=len(categories)),
    )


def chi2_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Pearson chi-square on the 2 x k table of category counts (no Yates correction): (chi2, p)."""
    from scipy.stats import chi2_contingency

    ref_counts, cur_counts = _category_counts(reference, current)
    if len(ref_counts) < 2:  # one category on both sides: nothing can have shifted
        return 0.0, 1.0
    result = chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
    return float(result.statistic), float(result.pvalue)


def psi(reference: np.ndarray, current: np.ndarray, bins: int, categorical: bool = False) -> float:
    """Population Stability Index, sum((c - r) * ln(c / r)) over bins.

    Numeric bins are the reference's quantiles (equal-mass on the reference; tied quantiles merge), with open
    outer bins so current values outside the reference's range still count. Categorical bins are the
    categories. Empty bins get a share of :data:`PSI_EPSILON`.
    """
    if categorical:
        ref_counts, cur_counts = _category_counts(reference, current)
    else:
        inner_edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
        n_bins = len(inner_edges) + 1
        ref_counts = np.bincount(np.searchsorted(inner_edges, reference, side="right"), minlength=n_bins)
        cur_counts = np.bincount(np.searchsorted(inner_edges, current, side="right"), minlength=n_bins)
    ref_share = np.maximum(ref_counts / len(reference), PSI_EPSILON)
    cur_share = np.maximum(cur_counts / len(current), PSI_EPSILON)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def feature_drift(
    reference: np.ndarray, current: np.ndarray, test: StatTest, cfg: DriftParams, *, categorical: bool
) -> FeatureDrift:
    psi_value = psi(reference, current, cfg.psi_bins, categorical=categorical)
    if test == "psi":
        return FeatureDrift("psi", psi_value, None, psi_value, psi_value >= cfg.psi_threshold)
    if test == "ks":
        statistic, p_value = ks_test(reference, current, min(KS_NEGLIGIBLE_P, cfg.p_value / 1000))
    else:
        statistic, p_value = chi2_test(reference, current)
    return FeatureDrift(test, statistic, p_value, psi_value, p_value < cfg.p_value)


# --- input checks -------------------------------------------------------------------------------------


def check_frame(frame: pd.DataFrame, features: Sequence[str], cfg: DriftParams, source: str) -> None:
    """Raise :class:`DataError` naming ``source``, the column and the rule when a frame cannot be tested."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; expected the features {list(features)}")
    if frame.empty:
        raise DataError(f"{source}: has no rows; a drift test needs at least one row")
    for feature in features:
        column = frame[feature]
        missing_count = int(column.isna().sum())
        if missing_count:
            raise DataError(
                f"{source}: column {feature!r} has {missing_count} missing value(s) (NaN/empty); "
                "drift tests need complete rows"
            )
        if feature in cfg.categorical:
            continue  # categories may be any hashable value
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            bad = pd.to_numeric(column, errors="coerce").isna()
            example = column[bad].iloc[0] if bad.any() else column.iloc[0]
            raise DataError(
                f"{source}: column {feature!r} must be numeric (dtype {column.dtype}, e.g. {example!r}); "
                "list it in drift.categorical if it is a category"
            )
        infinite = int(np.isinf(column.to_numpy(dtype=np.float64)).sum())
        if infinite:
            raise DataError(f"{source}: column {feature!r} has {infinite} infinite value(s)")


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    cfg: DriftParams,
    features: Sequence[str],
    *,
    sources: tuple[str, str] = ("reference", "current window"),
) -> DriftResult:
    """Test every feature of ``current`` against ``reference`` (pure: no I/O). ``sources`` name the inputs
    in error messages."""
    if not features:
        raise DataError("drift: no features to test")
    check_frame(reference, features, cfg, sources[0])
    check_frame(current, features, cfg, sources[1])
    for feature, test in cfg.tests.items():
        if test == "ks" and feature in cfg.categorical:
            raise DataError(f"drift.tests.{feature}: ks needs a numeric feature, {feature!r} is categorical")

    def one(feature: str) -> FeatureDrift:
        categorical = feature in cfg.categorical
        ref_values, cur_values = reference[feature].to_numpy(), current[feature].to_numpy()
        if not categorical:
            ref_values, cur_values = ref_values.astype(np.float64), cur_values.astype(np.float64)
        return feature_drift(
            ref_values, cur_values, deciding_test(feature, cfg), cfg, categorical=categorical
        )

    # Features are independent and the work is numpy sorting/searching, which releases the GIL: threads
    # use every core on large windows. Small windows are not worth a pool.
    workers = (
        min(len(features), os.cpu_count() or 1) if len(reference) + len(current) >= PARALLEL_MIN_ROWS else 1
    )
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = dict(zip(features, pool.map(one, features), strict=True))
    else:
        results = {feature: one(feature) for feature in features}
    return DriftResult(results, cfg.threshold, len(reference), len(current))


# --- Evidently ----------------------------------------------------------------------------------------


# Evidently names every widget and metric with a fresh UUID (dashed, or 32 hex digits in JS names).
_UUID = re.compile(
    r"(?<![0-9a-fA-F])(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})(?![0-9a-fA-F])"
)


def stable_ids(html: str) -> str:
    """Replace each distinct UUID by a sequence number in order of first appearance.

    The report is a DVC-tracked output: the same reference and window must give the same bytes. The ids only
    link the page's elements to each other, so a consistent renumbering renders the same page.
    """
    numbers: dict[str, str] = {}

    def number(match: re.Match[str]) -> str:
        found = match.group(0)
        hex32 = numbers.setdefault(found.replace("-", ""), f"{len(numbers) + 1:032x}")
        return str(uuid.UUID(hex32)) if "-" in found else hex32

    return _UUID.sub(number, html)


@dataclass(frozen=True)
class EvidentlyVerdict:
    drift_share: float
    drifted_features: list[str]
    snapshot: Any  # evidently's Snapshot, kept to render the HTML on demand

    @property
    def html(self) -> str:
        return stable_ids(self.snapshot.get_html_str(as_iframe=False))

    def to_dict(self, native: DriftResult) -> dict[str, Any]:
        return {
            "drift_share": self.drift_share,
            "drifted_features": self.drifted_features,
            "agrees": set(self.drifted_features) == set(native.drifted_features),
        }


def evidently_drift(
    reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftParams, features: Sequence[str]
) -> EvidentlyVerdict:
    """Evidently's DataDriftPreset with each column's method and threshold set to match the native test.

    Its per-column verdicts are the ``status`` of the per-column drift tests (FAIL = drifted).
    """
    # Imported here: Evidently takes seconds to import and only this stage needs it.
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    features = list(features)
    methods = {f: EVIDENTLY_METHOD[deciding_test(f, cfg)] for f in features}
    thresholds = {f: cfg.psi_threshold if methods[f] == "psi" else cfg.p_value for f in features}
    definition = DataDefinition(
        numerical_columns=[f for f in features if f not in cfg.categorical],
        categorical_columns=[f for f in features if f in cfg.categorical],
    )
    report = Report(
        [
            DataDriftPreset(
                columns=features,
                per_column_method=methods,
                per_column_threshold=thresholds,
                drift_share=cfg.threshold,
            )
        ],
        include_tests=True,
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(current[features], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[features], data_definition=definition),
    )
    document = snapshot.dict()
    drifted = []
    for test in document["tests"]:
        column = test.get("metric_config", {}).get("params", {}).get("column")
        if column in methods and test["status"] == "FAIL":
            drifted.append(column)
    share = next(
        m["value"]["share"] for m in document["metrics"] if m["metric_name"].startswith("DriftedColumnsCount")
    )
    return EvidentlyVerdict(float(share), [f for f in features if f in drifted], snapshot)


# --- the stage ----------------------------------------------------------------------------------------

_DISABLED_HTML = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Drift report</title></head><body>"
    "<p>The Evidently report is disabled (<code>drift.evidently_report: false</code> in params.yaml); "
    "the native verdicts are in reports/drift.json.</p></body></html>\n"
)


def run(params: Params, current_path: Path | None = None) -> DriftReport:
    """Run the drift stage; write ``reports/drift.json`` and the HTML report only if everything succeeded."""
    features = list(params.data.features)
    cfg = params.drift
    window_path = Path(current_path or params.data.production_window_path)
    reference = read_csv(paths.REFERENCE_CSV, features)
    current = read_window(window_path, params.data)
    result = detect_drift(
        reference, current, cfg, features, sources=(str(paths.REFERENCE_CSV), str(window_path))
    )
    evidently = None
    html = _DISABLED_HTML
    if cfg.evidently_report:
        verdict = evidently_drift(reference, current, cfg, features)
        evidently = verdict.to_dict(result)
        html = verdict.html
    document = result.to_dict(evidently)
    _check_finite(document)
    report = DriftReport.model_validate(document)
    # Both outputs are computed before either is written, and each write is atomic (temp file + rename).
    atomic_write_bytes(paths.DRIFT_HTML, html.encode())
    atomic_write_json(paths.DRIFT_JSON, report.model_dump(mode="json"))
    return report


def _check_finite(document: dict[str, Any]) -> None:
    """drift.json must be strict JSON: a NaN statistic would be a bug, so fail instead of writing it."""
    for name, feature in document["features"].items():
        for key in ("statistic", "p_value", "psi"):
            value = feature[key]
            if value is not None and not math.isfinite(value):
                raise DataError(f"drift: feature {name!r} has a non-finite {key} ({value})")


def describe(result: DriftReport) -> str:
    return (
        f"drift score {result.drift_score:.3f} (threshold {result.threshold}); "
        f"drifted: {', '.join(result.drifted_features) or 'none'}; "
        f"retrain_recommended={str(result.retrain_recommended).lower()}"
    )


if __name__ == "__main__":
    main(run, describe)
