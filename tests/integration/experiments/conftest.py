"""Fixtures: the houses the simulator replays (the challenger model is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def houses_csv(tmp_path_factory, small_split, params) -> Path:
    """The 1 000 held-out houses of ``small_split`` as a CSV of the raw columns (with the target)."""
    _, _, X_test, y_test = small_split
    frame = pd.DataFrame(X_test.astype("float64"), columns=list(params.data.features))
    frame[params.data.target] = y_test
    path = tmp_path_factory.mktemp("houses") / "houses.csv"
    frame.to_csv(path, index=False)
    return path
