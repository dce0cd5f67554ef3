"""Data frames on disk: deterministic CSV writing, reading with errors that name the file and column, and
the float32 feature matrix every model takes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from housing.artifact import atomic_write_bytes
from housing.config import DataParams
from housing.errors import DataError


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic CSV: fixed column order, no index, '\\n' endings, shortest round-trip floats."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode()


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    atomic_write_bytes(path, to_csv_bytes(frame))


def read_csv(path: Path, columns: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a data file and check it has the expected columns; errors name the file and the column."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {list(columns)}")
    return frame


def load_xy(path: Path, data_params: DataParams) -> tuple[np.ndarray, np.ndarray]:
    """Features as a float32 matrix in schema order (what the ONNX model takes) and the target."""
    frame = read_csv(path, [*data_params.features, data_params.target])
    return (
        frame[list(data_params.features)].to_numpy(dtype=np.float32),
        frame[data_params.target].to_numpy(dtype=np.float64),
    )
