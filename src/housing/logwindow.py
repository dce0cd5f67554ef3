"""The production window: a CSV, or the prediction records of an inference log turned into one.

Shared by the drift stage, ``housing simulate window --from-log`` (what retrain.yml pins as the window) and
the closed loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from housing.config import DataParams
from housing.errors import DataError
from housing.frames import read_csv, write_csv

WindowKind = Literal["csv", "log"]


def window_kind(path: Path) -> WindowKind:
    """An inference log is a directory of JSONL files or a ``.jsonl`` file; anything else is read as CSV."""
    return "log" if path.is_dir() or path.suffix == ".jsonl" else "csv"


def read_window(path: Path, data_params: DataParams) -> pd.DataFrame:
    """The production window as a frame: a CSV, or the prediction records of an inference log."""
    if not path.exists():
        raise DataError(f"{path}: production window not found (write one with `housing simulate window`)")
    if window_kind(path) == "log":
        return frame_from_log(path, data_params)
    return read_csv(path)


def frame_from_log(log_path: Path, data_params: DataParams) -> pd.DataFrame:
    """The served rows of an inference log (file or directory) as a frame of features + ground truth.

    Shadow predictions are skipped (the same input was also scored by the live model). The target comes
    from the feedback records joined on (request_id, instance), and is NaN where no feedback arrived. Lines
    that are not records (torn by a crash) are skipped by the reader, which warns with their count; the
    count is also in ``frame.attrs["log_skipped_lines"]``.
    """
    from housing.inference_log import ReadStats, iter_records

    if not log_path.exists():
        raise DataError(f"{log_path}: inference log not found")
    features = list(data_params.features)
    stats = ReadStats()
    actuals: dict[tuple[object, object], object] = {}
    predictions: list[dict] = []
    for record in iter_records(log_path, stats=stats):
        kind = record.get("kind")
        if kind == "feedback":
            actuals[(record.get("request_id"), record.get("instance", 0))] = record.get("actual")
        elif kind == "prediction" and not record.get("shadow"):
            predictions.append(record)
    rows: list[list[float]] = []
    for record in predictions:
        values = record.get("features")
        if not isinstance(values, dict):
            raise DataError(
                f"{log_path}: prediction record {record.get('request_id')!r} has no 'features' object"
            )
        missing = [f for f in features if f not in values]
        if missing:
            raise DataError(
                f"{log_path}: prediction record {record.get('request_id')!r} lacks feature(s) {missing}"
            )
        actual = actuals.get((record.get("request_id"), record.get("instance", 0)))
        rows.append([*(values[f] for f in features), np.nan if actual is None else actual])
    if not rows:
        raise DataError(f"{log_path}: no (non-shadow) prediction records to build a window from")
    try:
        frame = pd.DataFrame(rows, columns=[*features, data_params.target], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{log_path}: a logged feature or actual is not a number ({exc})") from None
    frame.attrs["log_skipped_lines"] = stats.skipped
    return frame


def window_from_log(log_path: Path, out: Path, data_params: DataParams) -> int:
    """Write the window CSV built from an inference log; returns the row count."""
    window = frame_from_log(log_path, data_params)
    write_csv(window, out)
    return len(window)
