import hashlib

import pandas as pd
import pytest

from housing import paths
from housing.config import DataParams, SplitParams, load_params
from housing.errors import DataError, DataValidationError
from housing.frames import load_xy, read_csv
from housing.ingest import ingest
from housing.stages.split import run

# sha256 of data/raw/california_housing.csv as scikit-learn's cache gives it (pinned by data.dvc too).
PARAMS = load_params()
RULES = PARAMS.validate_  # the repository's own rules


def split(data: DataParams, split_params: SplitParams, rules=RULES):
    """The split stage on these sections of the repository's params."""
    return run(PARAMS.model_copy(update={"data": data, "split": split_params, "validate_": rules}))


RAW_SHA256 = "94ef369b909f5c725340b512b7c9a05c1550a554b6592d29303990e3ba521a1f"


def test_ingest_writes_identical_bytes_every_time(tmp_path):
    first = ingest(DataParams(raw_path=tmp_path / "a.csv"))
    second = ingest(DataParams(raw_path=tmp_path / "b.csv"))
    assert first.rows == 20640
    assert first.sha256 == second.sha256 == RAW_SHA256
    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == RAW_SHA256
    header = first.path.read_text().splitlines()[0]
    assert header == "MedInc,HouseAge,AveRooms,AveBedrms,Population,AveOccup,Latitude,Longitude,MedHouseVal"


def test_split_is_seeded_disjoint_and_80_20(tmp_path, monkeypatch, housing_frame):
    raw = tmp_path / "raw.csv"
    housing_frame.to_csv(raw, index=False)
    monkeypatch.chdir(tmp_path)
    result = split(DataParams(raw_path=raw), SplitParams(test_size=0.2, seed=42, reference_rows=1000), RULES)
    assert (result.train_rows, result.test_rows, result.reference_rows) == (16512, 4128, 1000)
    train, test, reference = (pd.read_csv(p) for p in (paths.TRAIN_CSV, paths.TEST_CSV, paths.REFERENCE_CSV))
    key = list(train.columns)
    assert train.merge(test, on=key).empty
    assert len(reference.merge(train, on=key).drop_duplicates()) == len(reference.drop_duplicates())
    before = paths.TEST_CSV.read_bytes()
    split(DataParams(raw_path=raw), SplitParams(test_size=0.2, seed=42, reference_rows=1000), RULES)
    assert paths.TEST_CSV.read_bytes() == before


def test_read_csv_names_the_file_and_the_missing_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("MedInc,HouseAge\n1,2\n")
    with pytest.raises(DataError, match=r"x\.csv: missing column\(s\) \['AveRooms'\]"):
        read_csv(path, ["MedInc", "AveRooms"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: file is empty"):
        read_csv(empty)
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_csv(tmp_path / "nope.csv")


def test_load_xy_returns_float32_features_in_schema_order(tmp_path, housing_frame):
    path = tmp_path / "f.csv"
    housing_frame.iloc[:10, ::-1].to_csv(path, index=False)  # columns in reverse order on disk
    X, y = load_xy(path, DataParams())
    assert X.dtype.name == "float32"
    assert X.shape == (10, 8)
    assert X[0, 0] == pytest.approx(housing_frame.MedInc.iloc[0], rel=1e-6)
    assert y[0] == pytest.approx(housing_frame.MedHouseVal.iloc[0])


def _split_with_window(tmp_path, monkeypatch, housing_frame, window: pd.DataFrame):
    raw, window_path = tmp_path / "raw.csv", tmp_path / "window.csv"
    housing_frame.to_csv(raw, index=False)
    window.to_csv(window_path, index=False)
    monkeypatch.chdir(tmp_path)
    data = DataParams(raw_path=raw, production_window_path=window_path)
    return split(data, SplitParams(reference_rows=1000), RULES)


def test_new_labelled_window_rows_join_training_only(tmp_path, monkeypatch, housing_frame):
    baseline = _split_with_window(tmp_path, monkeypatch, housing_frame, housing_frame.iloc[:0])
    test_before = paths.TEST_CSV.read_bytes()
    new = housing_frame.sample(300, random_state=1).assign(
        MedHouseVal=lambda f: (f.MedHouseVal * 1.1).clip(upper=5)
    )
    new["HouseAge"] = (new["HouseAge"] + 1).clip(upper=52)  # new houses: not rows of the raw data set
    unlabelled = new.iloc[:50].assign(MedHouseVal=float("nan"))
    repeats = housing_frame.iloc[:100]  # rows of the raw data set (some are test rows): must not leak
    window = pd.concat([new.iloc[50:], unlabelled, repeats, new.iloc[50:60]])
    result = _split_with_window(tmp_path, monkeypatch, housing_frame, window)
    assert result.production_rows == 250
    assert result.train_rows == baseline.train_rows + 250
    assert paths.TEST_CSV.read_bytes() == test_before
    train = pd.read_csv(paths.TRAIN_CSV)
    # CSV round trips may move a value by one ulp: compare rounded.
    assert len(train.round(6).merge(new.iloc[50:].round(6), on=list(train.columns))) == 250


def test_bootstrap_window_sampled_from_the_raw_data_adds_nothing(tmp_path, monkeypatch, housing_frame):
    result = _split_with_window(
        tmp_path, monkeypatch, housing_frame, housing_frame.sample(2000, random_state=7)
    )
    assert result.production_rows == 0
    assert result.train_rows == 16512


def test_window_rows_breaking_a_row_rule_fail_the_split_naming_file_and_column(
    tmp_path, monkeypatch, housing_frame
):
    bad = housing_frame.iloc[:20].assign(Latitude=55.0)
    with pytest.raises(DataValidationError, match=r"window.csv failed validation: Latitude: range rule"):
        _split_with_window(tmp_path, monkeypatch, housing_frame, bad)
    assert not paths.TRAIN_CSV.exists()
