"""Production windows for the drift stage: seeded drift scenarios over the raw data, or an inference log.

A scenario samples rows of the raw data set (optionally weighted toward a region), then shifts features.
The ground truth ``MedHouseVal`` stays in the window (retraining on data that includes the window needs it)
and follows each shift plausibly (see :data:`SCENARIOS_HELP`). Every value is clipped to the range observed
in the raw data set, which passed validation, so a window passes the validation range rules too.

Windows are byte-deterministic for the same (raw file, scenario, rows, seed): numpy's PCG64 generator, only
correctly rounded arithmetic (+, -, *, /, comparisons; no exp/log whose last bit depends on the CPU), and
pandas' shortest round-trip float formatting (:func:`housing.data.to_csv_bytes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from housing.config import DataParams
from housing.errors import ConfigError
from housing.frames import read_csv, write_csv

# Log-log slope of MedHouseVal on MedInc in the data set (0.81): a block whose income rises by a factor f is
# valued about f ** 0.81 higher. Rounded to 3 decimals so that pow's last bit cannot differ across machines.
INCOME_ELASTICITY = 0.81


def income_target_factor(income_factor: float) -> float:
    return round(income_factor**INCOME_ELASTICITY, 3)


# The California shoreline as (latitude, longitude) points, south to north; linear in between.
COASTLINE = (
    (32.5, -117.1),  # San Diego
    (33.2, -117.4),  # Oceanside
    (33.75, -118.2),  # Long Beach
    (34.0, -118.5),  # Santa Monica
    (34.45, -120.5),  # Point Conception
    (35.4, -120.9),  # Morro Bay
    (36.6, -121.9),  # Monterey
    (37.8, -122.5),  # San Francisco
    (38.0, -123.0),  # Point Reyes
    (38.9, -123.7),  # Point Arena
    (40.4, -124.4),  # Cape Mendocino
    (42.0, -124.25),  # Oregon border
)
COASTAL_DEGREES = 0.5  # within ~45 km of the shore
INLAND_DEGREES = 1.0  # more than ~90 km from the shore
REGION_WEIGHT = 5.0  # rows in the favoured region are this many times more likely to be drawn


def degrees_from_coast(frame: pd.DataFrame) -> np.ndarray:
    """How far east of the shoreline (degrees of longitude) each block lies, at its own latitude."""
    lat, lon = zip(*COASTLINE, strict=True)
    return frame["Longitude"].to_numpy() - np.interp(frame["Latitude"].to_numpy(), lat, lon)


def _coastal_weights(frame: pd.DataFrame) -> np.ndarray:
    return np.where(degrees_from_coast(frame) < COASTAL_DEGREES, REGION_WEIGHT, 1.0)


def _inland_weights(frame: pd.DataFrame) -> np.ndarray:
    return np.where(degrees_from_coast(frame) >= INLAND_DEGREES, REGION_WEIGHT, 1.0)


def _scale_income(frame: pd.DataFrame, factor: float, target: str) -> None:
    # Rounded to the data set's precision (6 decimals) rather than printing 4.251650000000001.
    frame["MedInc"] = (frame["MedInc"] * factor).round(6)
    frame[target] = (frame[target] * income_target_factor(factor)).round(6)


def _income_shift(frame: pd.DataFrame, _rng: np.random.Generator, target: str) -> None:
    _scale_income(frame, 1.3, target)


def _aging_stock(frame: pd.DataFrame, _rng: np.random.Generator, _target: str) -> None:
    frame["HouseAge"] = frame["HouseAge"] + 10.0


def _occupancy_spike(frame: pd.DataFrame, rng: np.random.Generator, _target: str) -> None:
    # 40% of blocks double up: the same households hold 1.5x the people, so population rises with occupancy.
    spiked = rng.random(len(frame)) < 0.4
    frame.loc[spiked, "AveOccup"] = frame.loc[spiked, "AveOccup"] * 1.5
    frame.loc[spiked, "Population"] = np.round(frame.loc[spiked, "Population"] * 1.5)


def _covariate_mix(frame: pd.DataFrame, _rng: np.random.Generator, target: str) -> None:
    _scale_income(frame, 1.15, target)
    frame["HouseAge"] = frame["HouseAge"] + 5.0


# A regional market shift: coastal values rise this much while the blocks themselves do not change.
COASTAL_BOOM_FACTOR = 1.3


def _coastal_boom(frame: pd.DataFrame, _rng: np.random.Generator, target: str) -> None:
    # Concept drift, not only covariate shift: the same features are now worth more near the shore, so a model
    # trained before the shift under-values them and one retrained on labelled recent data does better.
    coastal = degrees_from_coast(frame) < COASTAL_DEGREES
    frame.loc[coastal, target] = (frame.loc[coastal, target] * COASTAL_BOOM_FACTOR).round(6)


Transform = Callable[[pd.DataFrame, np.random.Generator, str], None]
Weights = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Scenario:
    help: str
    weights: Weights | None = None  # sampling weights per raw row; None = uniform
    transform: Transform | None = None  # in-place shift of the sampled rows


SCENARIOS: dict[str, Scenario] = {
    "none": Scenario("uniform sample of the raw data set: no drift"),
    "income_shift": Scenario(
        f"the seed's shift: MedInc x1.3; MedHouseVal x{income_target_factor(1.3)} (1.3^0.81, the data set's "
        "income elasticity of value)",
        transform=_income_shift,
    ),
    "coastal_shift": Scenario(
        "sample weighted 5:1 toward blocks within 0.5 deg of the shore; real rows, real values",
        weights=_coastal_weights,
    ),
    "geo_shift": Scenario(
        "sample weighted 5:1 toward inland blocks (> 1 deg from the shore, e.g. Central Valley); real rows",
        weights=_inland_weights,
    ),
    "aging_stock": Scenario(
        "HouseAge +10 years (capped at the census's 52); MedHouseVal unchanged (age barely moves value)",
        transform=_aging_stock,
    ),
    "occupancy_spike": Scenario(
        "40% of blocks double up: AveOccup and Population x1.5; MedHouseVal unchanged",
        transform=_occupancy_spike,
    ),
    "covariate_mix": Scenario(
        f"coastal weighting + MedInc x1.15 (MedHouseVal x{income_target_factor(1.15)}) + HouseAge +5",
        weights=_coastal_weights,
        transform=_covariate_mix,
    ),
    "coastal_boom": Scenario(
        f"coastal weighting (as coastal_shift) + a regional market shift: coastal MedHouseVal "
        f"x{COASTAL_BOOM_FACTOR} for the same features (concept drift: retraining on labelled data helps)",
        weights=_coastal_weights,
        transform=_coastal_boom,
    ),
}
SCENARIOS_HELP: dict[str, str] = {name: scenario.help for name, scenario in SCENARIOS.items()}


def scenario_window(raw: pd.DataFrame, scenario: str, rows: int, seed: int, target: str) -> pd.DataFrame:
    """Sample ``rows`` rows of ``raw`` (seeded) and apply the named scenario; pure, no I/O.

    Rows are drawn without replacement (so a window has no duplicate rows) unless more rows than the data
    set holds are asked for. Every column is clipped to the range it has in ``raw``.
    """
    if scenario not in SCENARIOS:
        raise ConfigError(f"scenario {scenario!r} is unknown; valid scenarios: {', '.join(SCENARIOS)}")
    if rows < 1:
        raise ConfigError(f"rows must be at least 1, got {rows}")
    spec = SCENARIOS[scenario]
    rng = np.random.default_rng(seed)
    weights = None
    if spec.weights is not None:
        raw_weights = spec.weights(raw)
        weights = raw_weights / raw_weights.sum()
    picked = np.sort(rng.choice(len(raw), size=rows, replace=rows > len(raw), p=weights))
    window = raw.iloc[picked].reset_index(drop=True).copy()
    if spec.transform is not None:
        spec.transform(window, rng, target)
    return window.clip(lower=raw.min(), upper=raw.max(), axis=1)


def write_window(data_params: DataParams, scenario: str, rows: int, seed: int, out: Path) -> int:
    """Write a scenario window CSV (features + ground truth) to ``out``; returns the row count."""
    columns = [*data_params.features, data_params.target]
    raw = read_csv(data_params.raw_path, columns)[columns].astype(np.float64)
    window = scenario_window(raw, scenario, rows, seed, data_params.target)
    write_csv(window, out)
    return len(window)
