"""Statistical building blocks of the A/B analysis; pure functions over numpy arrays.

Sign convention everywhere: a difference is *challenger minus champion*, so for an error metric a negative
difference means the challenger is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_CHUNK_CELLS = 2_000_000  # resample rows x observations per chunk: bounds memory at ~16 MB


@dataclass(frozen=True)
class TestOutcome:
    statistic: float
    p_value: float
    df: float | None = None


def sample_size_per_arm(delta: float, sd: float, alpha: float, power: float) -> int:
    """Observations per arm for a two-sided two-sample test of means to detect ``delta`` (normal approx.).

    n = 2 sd² (z_{1-α/2} + z_{power})² / δ², rounded up. A paired design never needs more pairs than this.
    """
    if delta <= 0 or sd <= 0:
        raise ValueError("delta and sd must be positive")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return math.ceil(2 * sd**2 * z**2 / delta**2)


def welch_t(champion: np.ndarray, challenger: np.ndarray) -> TestOutcome:
    """Welch's unequal-variance t-test of mean(challenger) - mean(champion) = 0 (two-sided)."""
    result = stats.ttest_ind(challenger, champion, equal_var=False)
    if not np.isfinite(result.pvalue):  # both samples constant
        same = float(np.mean(challenger)) == float(np.mean(champion))
        return TestOutcome(0.0 if same else math.inf, 1.0 if same else 0.0, None)
    return TestOutcome(float(result.statistic), float(result.pvalue), float(result.df))


def paired_t(differences: np.ndarray) -> TestOutcome:
    """Paired t-test: mean of per-observation differences = 0 (two-sided)."""
    if float(np.std(differences)) == 0.0:  # scipy returns nan; a constant difference is exact
        mean = float(np.mean(differences))
        return TestOutcome(0.0 if mean == 0 else math.copysign(math.inf, mean), 1.0 if mean == 0 else 0.0)
    result = stats.ttest_1samp(differences, 0.0)
    return TestOutcome(float(result.statistic), float(result.pvalue), float(result.df))


def _resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` bootstrap resamples of ``values``, vectorised in memory-bounded chunks."""
    n = len(values)
    chunk = max(1, BOOTSTRAP_CHUNK_CELLS // max(n, 1))
    out = np.empty(resamples)
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        index = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[index].mean(axis=1)
    return out


def _resampled_quantiles(
    values: np.ndarray, q: float, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    n = len(values)
    chunk = max(1, BOOTSTRAP_CHUNK_CELLS // max(n, 1))
    out = np.empty(resamples)
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        index = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = np.quantile(values[index], q, axis=1)
    return out


def bootstrap_diff_ci(
    champion: np.ndarray, challenger: np.ndarray, level: float, resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(challenger) - mean(champion), arms resampled independently."""
    rng = np.random.default_rng(seed)
    diffs = _resampled_means(challenger, resamples, rng) - _resampled_means(champion, resamples, rng)
    tail = (1 - level) / 2
    return float(np.quantile(diffs, tail)), float(np.quantile(diffs, 1 - tail))


def bootstrap_paired_ci(
    differences: np.ndarray, level: float, resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean per-observation difference (pairs resampled together)."""
    means = _resampled_means(differences, resamples, np.random.default_rng(seed))
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def bootstrap_quantile_ratio_lower(
    champion: np.ndarray, challenger: np.ndarray, q: float, confidence: float, resamples: int, seed: int
) -> float:
    """One-sided lower confidence bound of quantile_q(challenger) / quantile_q(champion) (bootstrap)."""
    rng = np.random.default_rng(seed)
    champ = _resampled_quantiles(champion, q, resamples, rng)
    chal = _resampled_quantiles(challenger, q, resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(champ > 0, chal / champ, np.inf)
    return float(np.quantile(ratios, 1 - confidence))


def two_proportion_worse(
    successes_ref: int, n_ref: int, successes_new: int, n_new: int, margin: float = 0.0
) -> TestOutcome:
    """One-sided pooled two-proportion z-test of H1: p_new > p_ref + margin.

    The p-value is the evidence that the new arm's proportion is larger (for an error rate: worse). With no
    variation at all (both 0% or both 100%) there is no evidence: p = 1.
    """
    if n_ref == 0 or n_new == 0:
        return TestOutcome(0.0, 1.0)
    p_ref, p_new = successes_ref / n_ref, successes_new / n_new
    pooled = (successes_ref + successes_new) / (n_ref + n_new)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_new))
    if se == 0:
        return TestOutcome(0.0, 1.0)
    z = (p_new - p_ref - margin) / se
    return TestOutcome(z, float(stats.norm.sf(z)))


def sample_ratio_p_value(n_champion: int, n_challenger: int, challenger_share: float) -> float:
    """Chi-square goodness-of-fit p-value of the observed split against the configured share.

    A tiny p-value (sample ratio mismatch) means the routing or the logging lost requests of one arm:
    the arms are then no longer comparable, whatever the error metrics say.
    """
    total = n_champion + n_challenger
    if total == 0:
        return 1.0
    expected = [total * (1 - challenger_share), total * challenger_share]
    return float(stats.chisquare([n_champion, n_challenger], f_exp=expected).pvalue)


@dataclass(frozen=True)
class MsprtOutcome:
    """Mixture sequential probability ratio test (normal mixture N(0, tau²) over the effect)."""

    likelihood_ratio: float
    p_value: float  # always-valid p-value at this look: min(1, 1/Λ)
    ci: tuple[float, float]  # always-valid (1-alpha) confidence interval of the difference
    tau: float


def msprt(difference: float, variance: float, tau: float, alpha: float) -> MsprtOutcome:
    """Always-valid test of difference = 0 given its estimate and the estimate's variance V.

    Λ = sqrt(V / (V + τ²)) · exp(τ² d² / (2 V (V + τ²)))  (Johari, Pekelis & Walsh 2017). Under H0, Λ is a
    nonnegative martingale, so P(Λ ever ≥ 1/α) ≤ α (Ville's inequality): analysts may look after every
    observation without inflating the false-positive rate.
    """
    if variance <= 0:
        exact = difference == 0
        return MsprtOutcome(1.0 if exact else math.inf, 1.0 if exact else 0.0, (difference, difference), tau)
    v, t2 = variance, tau**2
    log_lr = 0.5 * math.log(v / (v + t2)) + t2 * difference**2 / (2 * v * (v + t2))
    likelihood_ratio = math.exp(min(log_lr, 700.0))
    half_width = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))
    return MsprtOutcome(
        likelihood_ratio,
        min(1.0, 1.0 / likelihood_ratio),
        (difference - half_width, difference + half_width),
        tau,
    )
