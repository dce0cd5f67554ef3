"""Validate stage: schema, dtypes, ranges, missing values, duplicates and outliers of the raw data set.

On success the report goes to ``reports/validation.json``; any failed check raises
:class:`DataValidationError` naming the column and the rule, writes ``reports/validation_failed.json`` and
leaves the last good report in place, so downstream stages never see bad data.
"""

from __future__ import annotations

from pathlib import Path

from housing import paths
from housing.artifact import atomic_write_json, sha256_file
from housing.checks import describe_failures, validate_frame
from housing.config import Params
from housing.errors import DataValidationError
from housing.frames import read_csv
from housing.results import Check, ValidateResult
from housing.stages import main


def run(params: Params, report_path: Path = paths.VALIDATION_JSON) -> ValidateResult:
    """Validate the raw data file; on success write the report, on failure raise naming column and rule."""
    path = params.data.raw_path
    columns = [*params.data.features, params.data.target]
    frame = read_csv(path)  # column checks belong to the report, not to the reader
    checks = validate_frame(frame, params.validate_, columns)
    failed = [c for c in checks if not c["passed"]]
    report = ValidateResult(
        source=str(path),
        sha256=sha256_file(path),
        rows=len(frame),
        passed=not failed,
        failed=len(failed),
        checks=[Check(**c) for c in checks],
    )
    document = report.model_dump(mode="json")
    if failed:
        atomic_write_json(paths.VALIDATION_FAILED_JSON, document)
        raise DataValidationError(
            describe_failures(path, failed) + f" [full report: {paths.VALIDATION_FAILED_JSON}]", document
        )
    atomic_write_json(report_path, document)
    paths.VALIDATION_FAILED_JSON.unlink(missing_ok=True)
    return report


def describe(result: ValidateResult, report_path: Path = paths.VALIDATION_JSON) -> str:
    return f"validation passed: {result.rows} rows, {len(result.checks)} checks -> {report_path}"


if __name__ == "__main__":
    main(run, describe)
