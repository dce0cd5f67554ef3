"""Ingest: the California housing data set as a CSV whose bytes are identical on every machine.

Not a DVC stage: ``data/`` is a versioned input (``data.dvc``); ``make data`` (``housing.data_setup``) calls
this when no remote has the pinned data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from housing.artifact import sha256_file
from housing.config import DataParams
from housing.errors import DataError
from housing.frames import write_csv
from housing.strict import Strict


class IngestResult(Strict):
    path: Path
    rows: int
    sha256: str


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
    return IngestResult(path=data_params.raw_path, rows=len(frame), sha256=sha256_file(data_params.raw_path))
