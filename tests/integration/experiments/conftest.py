"""Fixtures: a second real exported model (the challenger) and the houses the simulator replays."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def challenger_dir(tmp_path_factory, small_split, small_params) -> Path:
    """A real artifact that predicts differently from ``model_dir``: fewer, smaller trees."""
    from housing.stages.export import export_model
    from housing.stages.train import fit

    X_train, y_train, X_test, y_test = small_split
    hgb = small_params.train.hgb.model_copy(update={"max_iter": 20, "max_leaf_nodes": 7})
    pipeline, _ = fit(X_train, y_train, small_params.train.model_copy(update={"hgb": hgb}))
    out = tmp_path_factory.mktemp("challenger")
    export_model(pipeline, X_test, y_test, small_params, out, {"train": "t2", "test": "test-holdout"})
    return out


@pytest.fixture(scope="session")
def houses_csv(tmp_path_factory, small_split, params) -> Path:
    """The 1 000 held-out houses of ``small_split`` as a CSV of the raw columns (with the target)."""
    _, _, X_test, y_test = small_split
    frame = pd.DataFrame(X_test.astype("float64"), columns=list(params.data.features))
    frame[params.data.target] = y_test
    path = tmp_path_factory.mktemp("houses") / "houses.csv"
    frame.to_csv(path, index=False)
    return path
