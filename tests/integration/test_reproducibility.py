"""Reproducible means byte for byte: fresh clones rebuild exactly what dvc.lock pins.

Two clones of HEAD in different folders, at different times and with different string-hash seeds, each with
an empty DVC cache: the whole pipeline in one leaves `git status` clean (dvc.lock and the tracked reports are
unchanged), and `dvc repro export` in the other produces the same `models/` bytes. This is what lets CD
rebuild a model that nobody pushed and still verify it against dvc.lock, and what keeps every CI run and
every newcomer from seeing a changed pipeline that nobody changed.

The clones run HEAD's committed code (PYTHONPATH points at each clone's src/).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _clone(tmp_path: Path, name: str, seed: str) -> tuple[Path, dict[str, str]]:
    clone = tmp_path / name
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    shutil.copytree(ROOT / "data", clone / "data")  # what `make data` gets: it matches data.dvc
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(clone / "src"),
        "PYTHONHASHSEED": seed,
        "MLFLOW_TRACKING_URI": f"sqlite:///{clone}/mlflow.db",
        "DVC_NO_ANALYTICS": "1",
        "OMP_NUM_THREADS": "1",
    }
    return clone, env


def _tree_bytes(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_fresh_clones_rebuild_what_dvc_lock_pins_byte_for_byte(tmp_path):
    if not (ROOT / "data" / "raw" / "california_housing.csv").exists():
        pytest.skip("data/ is not set up: run `make data` first (the Makefile's test targets do)")
    if subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout:
        pytest.skip("the checkout has uncommitted changes: this test rebuilds HEAD's pinned outputs")

    first, env_first = _clone(tmp_path, "first", seed="1")
    output = _run(["dvc", "repro"], first, env_first)
    for stage in ("split", "train", "export", "evaluate", "drift"):
        assert f"Running stage '{stage}'" in output, stage  # an empty cache: everything was rebuilt
    assert _run(["git", "status", "--porcelain"], first, env_first) == ""

    time.sleep(1.1)  # a later second: a timestamp in any output would now differ
    second, env_second = _clone(tmp_path, "second", seed="20")
    _run(["dvc", "repro", "export"], second, env_second)
    assert _run(["git", "status", "--porcelain"], second, env_second) == ""
    assert _tree_bytes(second / "models") == _tree_bytes(first / "models")
