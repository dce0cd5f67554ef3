"""`housing kfp run --local`: the committed pipeline run by kfp.local on the shipped data.

Forced, it reproduces `dvc repro` byte for byte (dvc.lock's hashes, reports/metrics.json); on the shipped
no-drift window the retrain branch is skipped; on a drifted window it trains and registers a new @challenger
in a temporary MLflow store; a missed gate stops the run before register.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kfp_support import COMMITTED_PACKAGE, ROOT, require_kfp

from housing.kfp.package import KfpError, read_package, run_arguments

pytestmark = pytest.mark.slow

RAW = ROOT / "data" / "raw" / "california_housing.csv"
WINDOW = ROOT / "data" / "production" / "window.csv"
MODEL_NAME = "california-housing"
# Each pipeline output (task/artifact, relative to the run directory) and the dvc.yaml output it must equal.
SAME_AS_DVC = {
    "validate/validation": "reports/validation.json",
    "split/train_split": "artifacts/train.csv",
    "split/test_split": "artifacts/test.csv",
    "split/reference": "artifacts/reference.csv",
    "train/model": "artifacts/model.skops",
    "evaluate/metrics": "reports/metrics.json",
    "evaluate/evaluation/slices.json": "reports/slices.json",
    "evaluate/evaluation/plots/predictions.csv": "reports/plots/predictions.csv",
    "evaluate/evaluation/plots/importance.csv": "reports/plots/importance.csv",
    "drift/drift_json": "reports/drift.json",
    "drift/drift_report": "reports/drift_report.html",
}
ALWAYS = ("config", "validate", "split", "drift", "retrain-decision")
BRANCH = ("train", "export", "evaluate", "register")


@pytest.fixture(autouse=True)
def _needs_kfp_and_data():
    require_kfp()
    if not RAW.exists() or not WINDOW.exists():
        pytest.skip("data/ is missing: run `make data` first")


def _run(tmp_path: Path, *, force: bool, window: Path = WINDOW, overrides: tuple[str, ...] = ()):
    from housing.kfp.local import run_local

    arguments = run_arguments(
        read_package(COMMITTED_PACKAGE),
        raw_data_uri=str(RAW),
        production_window_uri=str(window),
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        force=force,
        overrides=overrides,
    )
    return run_local(COMMITTED_PACKAGE, arguments, tmp_path / "runs")


def _dvc_lock_md5() -> dict[str, str]:
    stages = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])}


def _challenger(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(MODEL_NAME, "challenger")


def test_forced_run_reproduces_dvc_repro(tmp_path: Path):
    result = _run(tmp_path, force=True)
    assert result.tasks == (*ALWAYS, *BRANCH)
    expected = json.loads((ROOT / "reports" / "metrics.json").read_text())
    assert set(result.test_metrics) == set(expected["test"])
    for name, value in expected["test"].items():
        assert result.test_metrics[name] == pytest.approx(value, abs=1e-6), name
    locked = _dvc_lock_md5()
    for output, path in SAME_AS_DVC.items():
        digest = hashlib.md5((result.run_dir / output).read_bytes(), usedforsecurity=False).hexdigest()
        assert digest == locked[path], f"{output} differs from dvc.lock's {path}"
    assert result.model_version == expected["model"]["version"]  # the ONNX bytes' sha256 prefix
    challenger = _challenger(f"sqlite:///{tmp_path}/mlflow.db")
    assert str(challenger.version) == result.registered_version == "1"
    assert challenger.tags["model_version"] == result.model_version
    print(f"\nforced local run: {result.seconds} s, test metrics {result.test_metrics}")


def test_no_drift_window_skips_the_retrain_branch(tmp_path: Path):
    result = _run(tmp_path, force=False)
    assert result.tasks == ALWAYS
    assert result.drift_score == 0.0
    assert result.retrain is False
    assert result.test_metrics is None
    assert result.registered_version is None
    assert not (tmp_path / "mlflow.db").exists()  # the tracking store was never touched
    print(f"\nno-drift local run: {result.seconds} s, drift score {result.drift_score}, branch skipped")


def test_drifted_window_retrains_and_registers_a_challenger(tmp_path: Path):
    """Through the CLI, as a person would run it: a coastal_boom window, then `housing kfp run --local`."""
    window = tmp_path / "window.csv"
    housing = [sys.executable, "-m", "housing.cli"]
    simulate = [*housing, "simulate", "window", "--scenario", "coastal_boom", "--out", str(window)]
    subprocess.run(simulate, cwd=ROOT, check=True, capture_output=True, timeout=120)
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    done = subprocess.run(
        [
            *housing, "kfp", "run", "--local", "--production-window", str(window),
            "--mlflow-tracking-uri", tracking_uri, "--pipeline-root", str(tmp_path / "runs"),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.rindex('{\n  "run_dir"') :])
    assert result["tasks"] == [*ALWAYS, *BRANCH]
    assert result["drift_score"] >= 0.3
    assert result["retrain"] is True
    baseline = json.loads((ROOT / "reports" / "metrics.json").read_text())["model"]["version"]
    assert result["model_version"] != baseline  # trained on the window's labelled rows too
    challenger = _challenger(tracking_uri)
    assert str(challenger.version) == result["registered_version"]
    assert challenger.tags["model_version"] == result["model_version"]
    metrics = result["test_metrics"]
    print(f"\ndrifted local run: {result['seconds']} s, drift score {result['drift_score']}, {metrics}")


def test_missed_gate_stops_the_run_before_register(tmp_path: Path):
    overrides = ("evaluate.gates.r2_min=0.99", "train.hgb.max_iter=50")
    with pytest.raises(KfpError, match=r"local run of .* failed: .*FAILURE.*evaluate"):
        _run(tmp_path, force=True, overrides=overrides)
    (run_dir,) = (tmp_path / "runs").glob("housing-*")
    assert (run_dir / "export" / "onnx_model" / "model.onnx").exists()
    assert not (run_dir / "register").exists()
    assert not (tmp_path / "mlflow.db").exists()
