"""The real pipeline, end to end, in a temporary copy of the repository (`dvc repro`, twice).

Also proves the failure contract: bad data stops the pipeline at `validate` and every previous output
(model, metrics) stays exactly as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _run(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> tuple[Path, dict]:
    if not (ROOT / "data" / "raw" / "california_housing.csv").exists():
        pytest.skip("data/ is not set up: run `make data` first (the Makefile's test target does)")
    dest = tmp_path_factory.mktemp("repo")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "data", dest / "data")
    # Start from no outputs at all (a cold run), like a fresh clone.
    for out in ("artifacts", "models", "reports", "dvc.lock"):
        target = dest / out
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{dest}/mlflow.db",
        "DVC_NO_ANALYTICS": "1",
        "OMP_NUM_THREADS": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    _run(["git", "init", "-q"], dest, env)
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "copy"], dest, env)
    return dest, env


def test_cold_repro_builds_everything_then_is_a_no_op(repo_copy):
    repo, env = repo_copy
    _run(["dvc", "repro"], repo, env)
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["test"]["r2"] >= 0.85
    assert all(g["passed"] for g in metrics["gates"].values())
    for produced in (
        "models/model.onnx",
        "models/metadata.json",
        "reports/slices.json",
        "reports/figures/pred_vs_actual.png",
        "reports/plots/importance.csv",
        "reports/drift.json",
        "reports/drift_report.html",
        "reports/registration.json",
        "dvc.lock",
    ):
        assert (repo / produced).exists(), produced
    registration = json.loads((repo / "reports/registration.json").read_text())
    assert registration["alias"] == "challenger"

    second = _run(["dvc", "repro"], repo, env)
    assert "Running stage" not in second.stdout
    assert json.loads(_run(["dvc", "status", "--json"], repo, env).stdout) == {}

    shown = _run(["dvc", "metrics", "show", "--json"], repo, env)
    assert "reports/metrics.json" in shown.stdout


def test_bad_data_stops_at_validate_and_keeps_last_good_outputs(repo_copy):
    repo, env = repo_copy
    if not (repo / "models/metadata.json").exists():
        _run(["dvc", "repro"], repo, env)
    kept = {
        p: (repo / p).read_bytes()
        for p in ("models/metadata.json", "reports/metrics.json", "artifacts/test.csv")
    }
    raw = repo / "data/raw/california_housing.csv"
    original = raw.read_bytes()
    raw.write_bytes(
        original + b"1.0,20.0,5.0,1.0,1000.0,3.0,55.0,-120.0,2.0\n"
    )  # latitude 55: not California
    try:
        failed = _run(["dvc", "repro"], repo, env, check=False)
        assert failed.returncode != 0
        assert (
            "Latitude: range rule '32.4 <= value <= 42.1' broken by 1 row(s)" in failed.stderr + failed.stdout
        )
        for path, content in kept.items():
            assert (repo / path).read_bytes() == content, f"{path} changed after a failed stage"
        assert json.loads((repo / "reports/validation_failed.json").read_text())["passed"] is False
    finally:
        raw.write_bytes(original)


@pytest.mark.slow
def test_labelled_production_window_retrains_on_the_same_holdout(repo_copy):
    """The retraining path (retrain.yml): a new labelled window -> new training rows -> a new challenger."""
    repo, env = repo_copy
    if not (repo / "models/metadata.json").exists():
        _run(["dvc", "repro"], repo, env)
    _run(["housing", "promote"], repo, env)  # the first model becomes @champion
    before = json.loads((repo / "models/metadata.json").read_text())
    window = repo / "data/production/window.csv"
    original = window.read_bytes()
    try:
        _run(["housing", "simulate", "window", "--scenario", "coastal_boom", "--rows", "2000"], repo, env)
        run = _run(["dvc", "repro"], repo, env)
        assert "from the production window" in run.stdout
        added = int(run.stdout.split(" rows (")[1].split(" from")[0])
        assert added > 1000  # coastal houses revalued by the scenario are new, labelled rows
        for stage in ("split", "train", "export", "evaluate", "drift", "register"):
            assert f"Running stage '{stage}'" in run.stdout, stage
        after = json.loads((repo / "models/metadata.json").read_text())
        assert after["model_version"] != before["model_version"]
        assert after["holdout_sha256"] == before["holdout_sha256"]  # comparable: `housing promote` may judge
        assert json.loads((repo / "reports/drift.json").read_text())["retrain_recommended"] is True
        # The offline rule judges on the pre-shift holdout, where a model that learnt the coastal boom is
        # worse: it refuses, and live traffic decides (housing abtest, docs/abtest.md).
        decision = json.loads(_run(["housing", "promote"], repo, env).stdout)
        assert decision["promoted"] is False
        assert decision["candidate_value"] > decision["champion_value"]
        assert "worse than the champion" in decision["reason"]
    finally:
        window.write_bytes(original)
