"""Fixtures for tests/k8s (helpers live in k8s_support.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from k8s_support import K8S, MONITORING, OVERLAYS, SCHEMAS, render, tool


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return tool("amtool")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    return {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    if not SCHEMAS.is_dir():
        pytest.skip(
            f"SKIPPED LOUDLY: CRD JSON schemas not found at {SCHEMAS}: InferenceService/PrometheusRule/"
            "PodMonitor objects NOT validated (fetch them from the datreeio CRDs-catalog)"
        )
    return SCHEMAS


@pytest.fixture(scope="session")
def rules_dir(tmp_path_factory) -> Path:
    """A directory with rules.yml generated from the PrometheusRule and the promtool test files."""
    from housing.monitoring.promrules import main

    out = tmp_path_factory.mktemp("rules")
    assert main(["rules", str(MONITORING / "prometheusrule.yaml"), str(out / "rules.yml")]) == 0
    for test_file in (MONITORING / "tests").glob("*.test.yml"):
        shutil.copy(test_file, out / test_file.name)
    return out
