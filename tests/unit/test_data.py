import hashlib

import pandas as pd
import pytest

from housing import paths
from housing.config import DataParams, SplitParams
from housing.data import ingest, load_xy, read_csv, split
from housing.errors import DataError

# sha256 of data/raw/california_housing.csv as scikit-learn's cache gives it (pinned by data.dvc too).
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
    result = split(DataParams(raw_path=raw), SplitParams(test_size=0.2, seed=42, reference_rows=1000))
    assert (result.train_rows, result.test_rows, result.reference_rows) == (16512, 4128, 1000)
    train, test, reference = (pd.read_csv(p) for p in (paths.TRAIN_CSV, paths.TEST_CSV, paths.REFERENCE_CSV))
    key = list(train.columns)
    assert train.merge(test, on=key).empty
    assert len(reference.merge(train, on=key).drop_duplicates()) == len(reference.drop_duplicates())
    before = paths.TEST_CSV.read_bytes()
    split(DataParams(raw_path=raw), SplitParams(test_size=0.2, seed=42, reference_rows=1000))
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
