"""The production model: project params, the standard split (80/20, seed 42), trained once per session."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def standard_split(housing_frame, params):
    from housing.stages.split import split_frame

    train, test, _ = split_frame(housing_frame, params.split)
    features = list(params.data.features)
    return (
        train[features].to_numpy(np.float32),
        train[params.data.target].to_numpy(),
        test[features].to_numpy(np.float32),
        test[params.data.target].to_numpy(),
    )


@pytest.fixture(scope="session")
def production_pipeline(standard_split, params):
    from housing.stages.train import fit

    X_train, y_train, _, _ = standard_split
    pipeline, _ = fit(X_train, y_train, params.train)
    return pipeline


@pytest.fixture(scope="session")
def production_onnx(production_pipeline, standard_split, params):
    from housing.artifact import onnx_session
    from housing.modelio import to_onnx_bytes

    return onnx_session(to_onnx_bytes(production_pipeline, 8, params.export.opset))
