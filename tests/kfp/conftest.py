"""Fixtures for tests/kfp. Tests that compile or run pipelines need kfp, which lives in its own virtualenv
(`make kfp-check` runs them there); elsewhere they skip, saying so. The rest needs no kfp."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kfp_support import ROOT, require_kfp


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory, params) -> Path:
    """A fresh compile of the pipeline from the repository's params.yaml, with the placeholder image."""
    require_kfp()
    from housing.kfp.pipeline import compile_pipeline

    return compile_pipeline(params, tmp_path_factory.mktemp("kfp") / "housing_pipeline.yaml")


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A working directory with the repository's params.yaml and data/ (make data), for CLI runs."""
    if not (ROOT / "data" / "raw" / "california_housing.csv").exists():
        pytest.skip("data/ is missing: run `make data` first")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    return tmp_path
