"""Each validation rule catches its violation, names column + rule, and writes nothing downstream."""

import json

import numpy as np
import pytest

from housing import paths
from housing.errors import DataError, DataValidationError
from housing.stages.validate import run


@pytest.fixture
def good_frame(housing_frame):
    return housing_frame.sample(2000, random_state=1).reset_index(drop=True)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(frame, workdir, params):
    path = workdir / "raw.csv"
    frame.to_csv(path, index=False)
    data = params.data.model_copy(update={"raw_path": path})
    result = run(params.model_copy(update={"data": data}), report_path=workdir / "validation.json")
    return result.model_dump(mode="json")


def _expect_failure(frame, workdir, params, pattern):
    previous = workdir / "validation.json"
    previous.write_text('{"last": "good"}')
    with pytest.raises(DataValidationError, match=pattern) as info:
        _run(frame, workdir, params)
    # The last good report stays; the failure report explains.
    assert json.loads(previous.read_text()) == {"last": "good"}
    failed = json.loads(paths.VALIDATION_FAILED_JSON.read_text())
    assert failed["passed"] is False
    return info.value.report


def test_clean_sample_passes_and_writes_report(good_frame, workdir, params):
    report = _run(good_frame, workdir, params)
    assert report["passed"]
    assert json.loads((workdir / "validation.json").read_text())["rows"] == 2000


def test_missing_column(good_frame, workdir, params):
    _expect_failure(
        good_frame.drop(columns="AveRooms"),
        workdir,
        params,
        r"AveRooms: schema rule 'column must be present'",
    )


def test_unexpected_column(good_frame, workdir, params):
    _expect_failure(
        good_frame.assign(Extra=1.0), workdir, params, r"Extra: schema rule 'column is not in the schema'"
    )


def test_wrong_dtype_names_the_value(good_frame, workdir, params):
    frame = good_frame.astype({"HouseAge": object})
    frame.loc[3, "HouseAge"] = "old"
    report = _expect_failure(
        frame,
        workdir,
        params,
        r"HouseAge: dtype rule 'values must be int' broken by 1 row\(s\) \(e\.g\. row 3: 'old'\)",
    )
    assert report["failed"] >= 1


def test_fractional_value_in_integer_column(good_frame, workdir, params):
    frame = good_frame.copy()
    frame.loc[7, "HouseAge"] = 12.5
    _expect_failure(
        frame, workdir, params, r"HouseAge: dtype rule 'values must be whole numbers' broken by 1 row"
    )


def test_missing_values(good_frame, workdir, params):
    frame = good_frame.copy()
    frame.loc[[1, 2], "MedInc"] = np.nan
    _expect_failure(
        frame, workdir, params, r"MedInc: missing rule 'missing/infinite share <= 0' broken by 2 row\(s\)"
    )


def test_out_of_range(good_frame, workdir, params):
    frame = good_frame.copy()
    frame.loc[5, "Latitude"] = 50.0
    _expect_failure(
        frame,
        workdir,
        params,
        r"Latitude: range rule '32.4 <= value <= 42.1' broken by 1 row\(s\) \(e\.g\. row 5: 50\.0\)",
    )


def test_duplicates(good_frame, workdir, params):
    frame = good_frame.copy()
    frame.iloc[10] = frame.iloc[11]
    _expect_failure(
        frame, workdir, params, r"<table>: duplicates rule 'duplicate-row share <= 0' broken by 1 row"
    )


def test_outlier_share(good_frame, workdir, params):
    frame = good_frame.copy()
    frame.loc[:200, "AveRooms"] = 190.0  # inside the range, but 10% of rows are extreme
    _expect_failure(frame, workdir, params, r"AveRooms: outliers rule")


def test_too_few_rows(good_frame, workdir, params):
    _expect_failure(good_frame.head(10), workdir, params, r"row_count rule 'rows >= 1000'")


def test_empty_file_is_a_clear_error(workdir, params):
    path = workdir / "raw.csv"
    path.write_text("")
    with pytest.raises(DataError, match=r"raw\.csv: file is empty"):
        run(params.model_copy(update={"data": params.data.model_copy(update={"raw_path": path})}))
    assert not (workdir / "validation.json").exists()


def test_header_only_file_fails_row_count(workdir, params):
    path = workdir / "raw.csv"
    path.write_text(",".join([*params.data.features, params.data.target]) + "\n")
    with pytest.raises(DataValidationError, match=r"rows >= 1000"):
        run(params.model_copy(update={"data": params.data.model_copy(update={"raw_path": path})}))
