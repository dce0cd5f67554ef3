"""Data checks: rules come from ``params.yaml`` (validate section), never from code.

Each check yields a row of a report naming the column, the rule, how many rows broke it and a few
examples. Shared by the validate stage (the whole data set) and the split stage (the row rules applied to the
production window's labelled rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from housing.config import ValidateParams


def _examples(
    frame: pd.DataFrame, mask: pd.Series | np.ndarray, column: str | None, limit: int
) -> list[dict]:
    rows = frame.index[np.asarray(mask)][:limit]
    if column is None:
        return [{"row": int(r)} for r in rows]
    return [{"row": int(r), "value": _jsonable(frame.at[r, column])} for r in rows]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def _check(name: str, column: str | None, rule: str, count: int, examples: list, passed: bool) -> dict:
    return {
        "check": name,
        "column": column,
        "rule": rule,
        "count": count,
        "passed": passed,
        "examples": examples,
    }


def validate_frame(frame: pd.DataFrame, rules: ValidateParams, columns: list[str]) -> list[dict[str, Any]]:
    """Run every rule and return the list of check results (failed ones have ``passed: False``)."""
    checks: list[dict[str, Any]] = []
    limit = rules.max_examples
    n = len(frame)
    checks.append(_check("row_count", None, f"rows >= {rules.min_rows}", n, [], n >= rules.min_rows))
    missing = [c for c in columns if c not in frame.columns]
    for column in missing:
        checks.append(_check("schema", column, "column must be present", n, [], False))
    unexpected = [c for c in frame.columns if c not in columns]
    for column in unexpected:
        checks.append(_check("schema", column, "column is not in the schema", n, [], False))
    if n == 0:
        return checks

    for column in (c for c in columns if c in frame.columns):
        rule = rules.columns[column]
        values = pd.to_numeric(frame[column], errors="coerce")
        non_numeric = values.isna() & frame[column].notna()
        checks.append(
            _check(
                "dtype",
                column,
                f"values must be {rule.dtype}",
                int(non_numeric.sum()),
                _examples(frame, non_numeric, column, limit),
                not non_numeric.any(),
            )
        )
        if rule.dtype == "int":
            fractional = values.notna() & (values != values.round())
            checks.append(
                _check(
                    "dtype",
                    column,
                    "values must be whole numbers",
                    int(fractional.sum()),
                    _examples(frame, fractional, column, limit),
                    not fractional.any(),
                )
            )
        nan = frame[column].isna() | values.isin([np.inf, -np.inf])
        share = float(nan.mean())
        checks.append(
            _check(
                "missing",
                column,
                f"missing/infinite share <= {rules.max_missing_share:g}",
                int(nan.sum()),
                _examples(frame, nan, column, limit),
                share <= rules.max_missing_share,
            )
        )
        finite = values[np.isfinite(values)]
        out_of_range = (values < rule.min) | (values > rule.max)
        checks.append(
            _check(
                "range",
                column,
                f"{rule.min:g} <= value <= {rule.max:g}",
                int(out_of_range.sum()),
                _examples(frame, out_of_range, column, limit),
                not out_of_range.any(),
            )
        )
        median = float(finite.median()) if len(finite) else 0.0
        mad = float((finite - median).abs().median()) * 1.4826 if len(finite) else 0.0
        robust_z = (values - median).abs() / mad if mad > 0 else pd.Series(0.0, index=values.index)
        outliers = robust_z > rules.outlier_robust_z
        checks.append(
            _check(
                "outliers",
                column,
                f"share with robust z > {rules.outlier_robust_z:g} must be <= {rules.max_outlier_share:g}",
                int(outliers.sum()),
                _examples(frame, outliers, column, limit),
                float(outliers.mean()) <= rules.max_outlier_share,
            )
        )

    duplicated = frame.duplicated(keep="first")
    checks.append(
        _check(
            "duplicates",
            None,
            f"duplicate-row share <= {rules.max_duplicate_share:g}",
            int(duplicated.sum()),
            _examples(frame, duplicated, None, limit),
            float(duplicated.mean()) <= rules.max_duplicate_share,
        )
    )
    return checks


def describe_failures(source: Path, failed: list[dict[str, Any]]) -> str:
    parts = []
    for check in failed:
        where = check["column"] or "<table>"
        example = ""
        if check["examples"]:
            first = check["examples"][0]
            example = f" (e.g. row {first['row']}" + (f": {first['value']!r})" if "value" in first else ")")
        parts.append(
            f"{where}: {check['check']} rule '{check['rule']}' broken by {check['count']} row(s){example}"
        )
    return f"{source} failed validation: " + "; ".join(parts)
