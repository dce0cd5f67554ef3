"""Shared fixtures: offline data cache, a real (small) trained pipeline and its exported ONNX artifact."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_SKLEARN_DATA = ROOT.parent / "shared" / "scikit_learn_data"

# Offline machines read scikit-learn's cache from the shared copy; nothing here may download.
if "SCIKIT_LEARN_DATA" not in os.environ and SHARED_SKLEARN_DATA.is_dir():
    os.environ["SCIKIT_LEARN_DATA"] = str(SHARED_SKLEARN_DATA)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def params():
    from housing.config import load_params

    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def housing_frame(params):
    """The real California housing frame (20 640 rows), from the local cache."""
    from housing.ingest import fetch_raw

    return fetch_raw(params.data)


@pytest.fixture(scope="session")
def small_split(housing_frame, params):
    """A seeded 4 000-row sample split 3 000 / 1 000: (X_train, y_train, X_test, y_test), float32 features."""
    sample = housing_frame.sample(4000, random_state=0)
    X = sample[list(params.data.features)].to_numpy(np.float32)
    y = sample[params.data.target].to_numpy(np.float64)
    return X[:3000], y[:3000], X[3000:], y[3000:]


@pytest.fixture(scope="session")
def small_params(params):
    """Project params with a fast model (100 boosting rounds) for tests."""
    hgb = params.train.hgb.model_copy(update={"max_iter": 100, "learning_rate": 0.1})
    return params.model_copy(update={"train": params.train.model_copy(update={"hgb": hgb})})


@pytest.fixture(scope="session")
def trained_pipeline(small_split, small_params):
    from housing.stages.train import fit

    X_train, y_train, _, _ = small_split
    pipeline, _ = fit(X_train, y_train, small_params.train)
    return pipeline


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, trained_pipeline, small_split, small_params) -> Path:
    """A directory holding a real exported serving artifact: model.onnx + metadata.json.

    Treat it as read-only (it is shared by the whole session); copy it to tamper with it.
    """
    from housing.stages.export import export_model

    _, _, X_test, y_test = small_split
    out = tmp_path_factory.mktemp("model")
    export_model(
        trained_pipeline, X_test, y_test, small_params, out, {"train": "test-train", "test": "test-holdout"}
    )
    return out


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
