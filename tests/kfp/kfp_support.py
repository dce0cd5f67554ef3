"""Shared by tests/kfp (importable by name: pytest puts this directory on sys.path)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_PACKAGE = ROOT / "kfp" / "housing_pipeline.yaml"


def require_kfp() -> None:
    """Skip unless kfp is installed. `kfp.dsl`, not `kfp`: with tests/ on sys.path, this directory would pass
    for a namespace package called kfp."""
    pytest.importorskip(
        "kfp.dsl", reason="kfp is not installed here: `make kfp-check` runs these in build/tools/kfp"
    )
