"""Split stage: seeded train/test split of the validated data, plus the drift reference sample.

Labelled, new rows of the production window join the training split (never the test split), so a
retrained model learns from production while every model is compared on the same holdout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from housing import paths
from housing.checks import describe_failures, validate_frame
from housing.config import DataParams, Params, SplitParams, ValidateParams
from housing.errors import DataValidationError
from housing.frames import read_csv, write_csv
from housing.results import SplitResult
from housing.stages import main


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


def run(params: Params) -> SplitResult:
    """Split the validated data into train/test (seeded) and draw the drift reference sample."""
    data_params, split_params, rules = params.data, params.split, params.validate_
    frame = read_csv(data_params.raw_path, [*data_params.features, data_params.target])
    extra = None
    window = data_params.production_window_path
    if split_params.train_on_production_window and window.exists():
        extra = labelled_production_rows(window, frame, data_params, rules)
    train, test, reference = split_frame(frame, split_params, extra)
    for part, path in ((train, paths.TRAIN_CSV), (test, paths.TEST_CSV), (reference, paths.REFERENCE_CSV)):
        write_csv(part, path)
    return SplitResult(
        train_rows=len(train),
        test_rows=len(test),
        reference_rows=len(reference),
        production_rows=0 if extra is None else len(extra),
    )


def describe(result: SplitResult) -> str:
    return (
        f"train {result.train_rows} rows ({result.production_rows} from the production window), "
        f"test {result.test_rows} rows, reference {result.reference_rows}"
    )


if __name__ == "__main__":
    main(run, describe)
