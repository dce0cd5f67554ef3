"""Data set ingestion, loading and the train/test/reference split."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from housing import paths
from housing.artifact import atomic_write_bytes, sha256_file
from housing.config import DataParams, SplitParams, ValidateParams
from housing.errors import DataError, DataValidationError


@dataclass(frozen=True)
class IngestResult:
    path: Path
    rows: int
    sha256: str


@dataclass(frozen=True)
class SplitResult:
    train_rows: int
    test_rows: int
    reference_rows: int
    production_rows: int = 0  # labelled production-window rows added to the training split


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic CSV: fixed column order, no index, '\\n' endings, shortest round-trip floats."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode()


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    atomic_write_bytes(path, to_csv_bytes(frame))


def fetch_raw(data_params: DataParams, data_home: Path | None = None) -> pd.DataFrame:
    """Load the data set through scikit-learn (download, or the cache under ``$SCIKIT_LEARN_DATA``)."""
    from sklearn.datasets import fetch_california_housing

    try:
        frame = fetch_california_housing(data_home=data_home, as_frame=True).frame
    except OSError as exc:
        raise DataError(
            f"california housing: cannot download or find the cache ({exc}); "
            "offline, set SCIKIT_LEARN_DATA to a directory holding cal_housing_py3.pkz"
        ) from None
    columns = [*data_params.features, data_params.target]
    return frame[columns].astype("float64")


def ingest(data_params: DataParams, data_home: Path | None = None) -> IngestResult:
    """Materialise the raw data set as CSV whose bytes are identical on every machine."""
    frame = fetch_raw(data_params, data_home)
    write_csv(frame, data_params.raw_path)
    return IngestResult(data_params.raw_path, len(frame), sha256_file(data_params.raw_path))


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


def split_frame(
    frame: pd.DataFrame, split_params: SplitParams, extra_train: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Seeded train/test split, plus a reference sample of the training rows for drift detection.

    ``extra_train`` rows (labelled production data) join the training split only, so the test split, the
    holdout every model is compared on, stays the same; the reference sample is drawn from the training
    split as the model sees it.
    """
    from sklearn.model_selection import train_test_split

    # scikit-learn's own split, so "80/20, seed 42" means the same rows as everywhere else.
    train, test = train_test_split(frame, test_size=split_params.test_size, random_state=split_params.seed)
    if extra_train is not None and len(extra_train):
        train = pd.concat([train, extra_train[list(train.columns)]], ignore_index=True)
    rng = np.random.default_rng(split_params.seed)
    n_reference = min(split_params.reference_rows, len(train))
    reference = train.iloc[np.sort(rng.choice(len(train), size=n_reference, replace=False))]
    return train, test, reference


# Rules that judge each row on its own. Row count, outlier share and duplicate share judge a whole data set,
# which a production window (often small, and drifted on purpose) is not.
ROW_RULES = frozenset({"schema", "dtype", "missing", "range"})
MATCH_DECIMALS = 9  # window rows equal to raw rows at this precision are the same house


def labelled_production_rows(
    window_path: Path, known: pd.DataFrame, data_params: DataParams, rules: ValidateParams
) -> pd.DataFrame:
    """The production window's rows that carry ground truth and are new houses, checked by the row rules.

    Rows equal to a row of ``known`` (the raw data set) are dropped: they add nothing and could be test rows,
    which would leak the holdout into training (the bootstrap window is sampled from the raw data set).
    A window without the target column has no labelled rows.
    """
    from housing.validation import describe_failures, validate_frame

    columns = [*data_params.features, data_params.target]
    window = read_csv(window_path, data_params.features)
    if data_params.target not in window.columns:
        return pd.DataFrame(columns=columns)
    labelled = window.loc[window[data_params.target].notna(), columns].drop_duplicates()
    failed = [
        check
        for check in validate_frame(labelled, rules, columns)
        if not check["passed"] and check["check"] in ROW_RULES
    ]
    if failed:
        raise DataValidationError(
            describe_failures(window_path, failed), {"file": str(window_path), "failed": failed}
        )
    # Compare rounded: a value that went through a CSV write and read may come back one ulp off.
    seen = pd.MultiIndex.from_frame(known[columns].astype(np.float64).round(MATCH_DECIMALS))
    is_new = ~pd.MultiIndex.from_frame(labelled.astype(np.float64).round(MATCH_DECIMALS)).isin(seen)
    return labelled.loc[is_new].reset_index(drop=True)


def split(data_params: DataParams, split_params: SplitParams, rules: ValidateParams) -> SplitResult:
    frame = read_csv(data_params.raw_path, [*data_params.features, data_params.target])
    extra = None
    window = data_params.production_window_path
    if split_params.train_on_production_window and window.exists():
        extra = labelled_production_rows(window, frame, data_params, rules)
    train, test, reference = split_frame(frame, split_params, extra)
    for part, path in ((train, paths.TRAIN_CSV), (test, paths.TEST_CSV), (reference, paths.REFERENCE_CSV)):
        write_csv(part, path)
    return SplitResult(len(train), len(test), len(reference), 0 if extra is None else len(extra))
