"""``housing report``: end to end on a real git + DVC repository with a base and a change commit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from housing import report as rpt
from housing.cli import app
from markdown_tables import table_row

ROOT = Path(__file__).resolve().parents[2]
PNG = bytes.fromhex(  # a valid 1x1 PNG
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)

BASE_METRICS = {
    "test": {"r2": 0.85, "mae": 0.28, "rmse": 0.43, "bias": -0.004, "cost_usd_per_house": 3500.0, "n": 4128},
    "gates": {"r2_min": {"threshold": 0.75, "value": 0.85, "passed": True}},
    "model": {"version": "sha-base", "onnx_bytes": 2_000_000},
}
NEW_METRICS = {
    "test": {"r2": 0.87, "mae": 0.30, "rmse": 0.42, "bias": 0.002, "cost_usd_per_house": 3400.0, "n": 4128},
    "gates": {"r2_min": {"threshold": 0.75, "value": 0.87, "passed": True}},
    "model": {"version": "sha-new", "onnx_bytes": 2_500_000},
}
SLICES = {"region": {"bay_area": {"n": 911, "mae": 0.3057, "r2": 0.85}, "other": {"n": 10, "mae": 0.2}}}


def _drift(score: float, drifted: list[str]) -> dict:
    features = {
        name: {"test": "ks", "statistic": 0.2, "p_value": 0.001, "psi": 0.3, "drifted": name in drifted}
        for name in ("MedInc", "HouseAge", "AveRooms", "Latitude")
    }
    return {
        "drift_score": score,
        "threshold": 0.3,
        "retrain_recommended": score >= 0.3,
        "drifted_features": drifted,
        "n_reference": 5000,
        "n_current": 4000,
        "features": features,
        "evidently": {"drift_share": score, "drifted_features": drifted, "agrees": True},
    }


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def _write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))


def _dvc() -> str:
    return shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))


def _init_repo(repo: Path) -> None:
    """git + dvc repository holding the project's real dvc.yaml and params.yaml."""
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "ci@example.com")
    _git(repo, "config", "user.name", "CI")
    subprocess.run([_dvc(), "init", "-q"], cwd=repo, check=True, capture_output=True)
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _set_learning_rate(repo: Path, value: float) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["hgb"]["learning_rate"] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory) -> tuple[Path, str]:
    """A committed git + DVC project without any metrics yet (copied by the tests that change it)."""
    repo = tmp_path_factory.mktemp("template") / "repo"
    _init_repo(repo)
    return repo, _commit(repo, "project without metrics")


@pytest.fixture
def fresh_repo(template_repo, tmp_path) -> tuple[Path, str]:
    repo, base = template_repo
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    return copy, base


@pytest.fixture(scope="module")
def two_commit_repo(template_repo, tmp_path_factory) -> tuple[Path, str]:
    """Base commit with metrics; a change commit with new params, metrics, drift, slices and figures."""
    repo = tmp_path_factory.mktemp("report") / "repo"
    shutil.copytree(template_repo[0], repo, symlinks=True)
    _write_json(repo / "reports/metrics.json", BASE_METRICS)
    _write_json(repo / "reports/drift.json", _drift(0.25, ["MedInc"]))
    base = _commit(repo, "base")
    _set_learning_rate(repo, 0.1)
    _write_json(repo / "reports/metrics.json", NEW_METRICS)
    _write_json(repo / "reports/drift.json", _drift(0.5, ["MedInc", "Latitude"]))
    _write_json(repo / "reports/slices.json", SLICES)
    for name in ("residuals.png", "pred_vs_actual.png", "feature_importance.png"):
        (repo / "reports/figures").mkdir(parents=True, exist_ok=True)
        (repo / "reports/figures" / name).write_bytes(PNG)
    _commit(repo, "change: learning rate 0.1")
    _write_json(repo / "reports/timings.json", {"evaluate": {"onnx_latency_ms_p50": 0.0213}})  # untracked
    return repo, base


def test_report_end_to_end_on_two_commits(two_commit_repo):
    repo, base = two_commit_repo
    result = CliRunner().invoke(
        app,
        [
            "report",
            "--base",
            base,
            "--repo-root",
            str(repo),
            "--output",
            "out/report.md",
            "--run-url",
            "https://github.com/o/r/actions/runs/1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 param change(s), 0 failed gate(s), 3 figure(s)" in result.output
    text = (repo / "out/report.md").read_text()

    # metrics diff against the base commit, with direction-aware verdicts
    assert table_row(text, "r2")[1:] == ["0.8500", "0.8700", "+0.0200 (+2.4%)", "🟢 better"]
    assert table_row(text, "mae")[1:] == ["0.2800", "0.3000", "+0.0200 (+7.1%)", "🔴 worse"]
    assert table_row(text, "bias")[4] == "🟢 better"  # |0.002| < |-0.004|
    assert table_row(text, "cost_usd_per_house")[1:4] == ["3,500", "3,400", "-100 (-2.9%)"]
    assert table_row(text, "n")[3:] == ["+0 (+0.0%)", "="]
    # params diff
    assert table_row(text, "`train.hgb.learning_rate`")[1:] == ["0.0500", "0.1000"]
    # gates from params.yaml evaluate.gates
    assert table_row(text, "`evaluate.gates.r2_min`")[1:] == ["r2 >= 0.7500", "0.8700", "✅ pass"]
    assert table_row(text, "`evaluate.gates.mae_max`")[1:] == ["mae <= 0.4000", "0.3000", "✅ pass"]
    assert "✅ gates passed" in text.splitlines()[0]
    # slices, drift (with the base's score), model size and latency
    assert table_row(text, "bay_area")[1:] == ["911", "0.3057", "0.8500"]
    assert table_row(text, "other")[1:] == ["10", "0.2000", "—"]
    assert "drift score: **0.500** (base `" in text
    assert "`: 0.250), threshold 0.300" in text
    assert "drifted features: `MedInc`, `Latitude`" in text
    assert "retrain recommended: **yes**" in text
    assert "artifact `drift-report` of [workflow run](https://github.com/o/r/actions/runs/1)" in text
    assert table_row(text, "Latitude")[-1] == "⚠️ drifted"
    assert table_row(text, "ONNX size (bytes)")[1:] == ["2,000,000", "2,500,000", "+500,000 (+25.0%)", ""]
    # latency depends on the runner: this run's value, never compared with the base
    assert table_row(text, "ONNX latency p50, 1 row (ms, this runner)")[1:] == ["—", "0.0213", "", ""]
    assert "Model version `sha-new`." in text
    # figures: relative to the report (out/), in the documented order, and the paths resolve
    images = [line for line in text.splitlines() if line.startswith("![")]
    assert images == [
        "![Predicted vs actual](../reports/figures/pred_vs_actual.png)",
        "![Residuals](../reports/figures/residuals.png)",
        "![Permutation importance](../reports/figures/feature_importance.png)",
    ]
    for line in images:
        relative = line.split("](")[1].rstrip(")")
        assert (repo / "out" / relative).resolve().is_file()


def test_report_when_the_base_has_no_metrics_yet(fresh_repo):
    repo, base = fresh_repo
    _write_json(repo / "reports/metrics.json", NEW_METRICS)
    data = rpt.build_report(repo, base, Path("report.md"))
    text = (repo / "report.md").read_text()
    assert not data.base_has_metrics
    assert f"`{base}` has no metrics yet" in text
    assert table_row(text, "r2")[1:4] == ["—", "0.8700", "new"]
    assert table_row(text, "ONNX size (bytes)")[1:4] == ["—", "2,500,000", "new"]
    assert "_No parameter differs from" in text
    # optional inputs absent: said in the report, not an error
    assert "Missing inputs: `reports/slices.json`, `reports/drift.json`" in text
    assert "_No figures in `reports/figures`._" in text


def test_failed_gate_is_reported(fresh_repo):
    repo, base = fresh_repo
    bad = {**NEW_METRICS, "test": {**NEW_METRICS["test"], "mae": 0.45}}
    _write_json(repo / "reports/metrics.json", bad)
    text = rpt.render_report(rpt.collect(repo, base, repo / "report.md"))
    assert table_row(text, "`evaluate.gates.mae_max`")[1:] == ["mae <= 0.4000", "0.4500", "❌ fail"]
    assert "**1 of 2 gate(s) failed.**" in text
    assert "❌ gates failed" in text.splitlines()[0]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda r: None, "reports/metrics.json: not found"),
        (
            lambda r: (r / "reports/metrics.json").write_text("{not json"),
            "reports/metrics.json: not valid JSON",
        ),
        (lambda r: _write_json(r / "reports/metrics.json", {"model": {}}), "key 'test' missing"),
        (
            lambda r: _write_json(r / "reports/metrics.json", {"test": {"r2": 0.9}}),
            "reports/metrics.json: test.mae missing (needed by gate evaluate.gates.mae_max)",
        ),
        (
            lambda r: _write_json(r / "reports/metrics.json", {"test": {"r2": "high", "mae": 0.2}}),
            "reports/metrics.json: test.r2: expected a finite number, got 'high'",
        ),
    ],
    ids=["missing", "garbled", "no-test-section", "gate-metric-missing", "not-a-number"],
)
def test_bad_metrics_name_the_file(fresh_repo, setup, message):
    repo, _ = fresh_repo
    (repo / "reports").mkdir()
    setup(repo)
    with pytest.raises(rpt.ReportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rpt.collect(repo, "HEAD", repo / "report.md")


def test_garbled_drift_json_is_an_error_naming_it(fresh_repo):
    repo, base = fresh_repo
    _write_json(repo / "reports/metrics.json", NEW_METRICS)
    _write_json(repo / "reports/drift.json", {"drift_score": 0.1, "threshold": 0.3})
    with pytest.raises(
        rpt.ReportError, match=r"reports/drift\.json: retrain_recommended must be true or false"
    ):
        rpt.collect(repo, base, repo / "report.md")


def test_unknown_base_revision_is_named(two_commit_repo):
    repo, _ = two_commit_repo
    with pytest.raises(rpt.ReportError, match="no-such-branch"):
        rpt.collect(repo, "no-such-branch", repo / "report.md")


def test_not_a_project_root(tmp_path):
    with pytest.raises(rpt.ReportError, match=r"no dvc\.yaml here"):
        rpt.collect(tmp_path, "main", tmp_path / "report.md")


def test_cli_prints_one_line_and_exits_2(tmp_path):
    """The installed entry point turns a ReportError into one stderr line (no traceback)."""
    housing = Path(sys.executable).with_name("housing")
    result = subprocess.run(
        [str(housing), "report", "--repo-root", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path.resolve()}: no dvc.yaml here; pass --repo-root of the project"
    ]


@pytest.mark.parametrize(
    ("name", "old", "new", "verdict"),
    [
        ("r2", 0.8, 0.9, "🟢 better"),
        ("ppe10", 0.6, 0.5, "🔴 worse"),
        ("rmse", 0.4, 0.5, "🔴 worse"),
        ("mdape", 0.1, 0.09, "🟢 better"),
        ("bias", 0.01, -0.02, "🔴 worse"),
        ("bias", 0.01, -0.01, "="),
        ("n", 10, 20, ""),
    ],
)
def test_verdict_direction(name, old, new, verdict):
    assert rpt._verdict(name, old, new) == verdict


def test_gate_names_must_say_min_or_max():
    with pytest.raises(
        rpt.ReportError, match=r"evaluate.gates.r2_floor: gate names must end in _min or _max"
    ):
        rpt.gate_verdicts({"r2_floor": 0.7}, {"r2": 0.8}, "reports/metrics.json")


def test_no_figures_for_pull_request_bodies(two_commit_repo, tmp_path):
    repo, base = two_commit_repo
    output = tmp_path / "body.md"
    data = rpt.build_report(repo, base, output, include_figures=False, run_url="https://example.com/run/9")
    text = output.read_text()
    assert data.figures == []
    assert "![" not in text
    assert (
        "_Omitted here: see the CI report comment or the [workflow run](https://example.com/run/9)._" in text
    )


def test_figures_link_the_workflow_artifact_instead_of_embedding(two_commit_repo, tmp_path):
    """A PR comment cannot show a runner's files: the report links the artifact that holds them."""
    repo, base = two_commit_repo
    output = tmp_path / "report.md"
    url = "https://github.com/o/r/actions/runs/1/artifacts/42"
    rpt.build_report(repo, base, output, figures_url=url)
    text = output.read_text()
    assert "![" not in text
    assert (
        "Predicted vs actual (`pred_vs_actual.png`), Residuals (`residuals.png`), Permutation importance "
        f"(`feature_importance.png`): in the [workflow artifact]({url}) of this run." in text
    )


PIPELINE_LOG_GATE = """\
Running stage 'evaluate':
> housing evaluate
error: evaluate: quality gate(s) missed (mae_max: 0.4500 vs threshold 0.4); previous reports kept
ERROR: failed to reproduce 'evaluate': failed to run: housing evaluate, exited with 2
"""


def test_missed_gate_shows_this_runs_metrics_not_the_kept_ones(fresh_repo, tmp_path):
    """evaluate keeps the last good metrics.json and writes the failed run's beside it: the report shows
    the failed run's values, the failed gate and the error, headed as a failure."""
    repo, base = fresh_repo
    _write_json(repo / "reports/metrics.json", BASE_METRICS)
    base = _commit(repo, "base with metrics")
    failed = {
        "test": {**NEW_METRICS["test"], "mae": 0.45, "r2": 0.70},
        "gates": {},
        "model": {"version": "sha-failed", "onnx_bytes": 2_400_000},
    }
    _write_json(repo / "reports/evaluation_failed.json", failed)
    log = tmp_path / "pipeline.log"
    log.write_text(PIPELINE_LOG_GATE)
    run = rpt.pipeline_run("failure", log)
    assert (run.failed, run.failed_stage, run.metrics_current) == (True, "evaluate", False)
    text = rpt.render_report(rpt.collect(repo, base, repo / "report.md", pipeline=run))
    assert "❌ gates failed" in text.splitlines()[0]
    assert "## ❌ The pipeline failed at `evaluate`" in text
    assert "error: evaluate: quality gate(s) missed (mae_max: 0.4500 vs threshold 0.4)" in text
    assert table_row(text, "mae")[1:4] == ["0.2800", "0.4500", "+0.1700 (+60.7%)"]
    assert table_row(text, "`evaluate.gates.mae_max`")[1:] == ["mae <= 0.4000", "0.4500", "❌ fail"]
    assert table_row(text, "`evaluate.gates.r2_min`")[1:] == ["r2 >= 0.7500", "0.7000", "❌ fail"]
    assert "Model version `sha-failed`." in text


def test_a_pipeline_that_stopped_before_evaluate_shows_no_metrics_as_its_own(fresh_repo, tmp_path):
    repo, base = fresh_repo
    _write_json(repo / "reports/metrics.json", BASE_METRICS)
    base = _commit(repo, "base with metrics")
    log = tmp_path / "pipeline.log"
    log.write_text(
        "Running stage 'validate':\n> housing validate\nerror: data/raw/california_housing.csv: Latitude: "
        "range rule '32.4 <= value <= 42.1' broken by 1 row(s)\n"
        "ERROR: failed to reproduce 'validate': failed to run: housing validate, exited with 2\n"
    )
    text = rpt.render_report(
        rpt.collect(repo, base, repo / "report.md", pipeline=rpt.pipeline_run("failure", log))
    )
    assert "❌ pipeline failed at `validate`" in text.splitlines()[0]
    assert "It stopped before the evaluate stage: this change has no metrics." in text
    assert "Latitude: range rule '32.4 <= value <= 42.1' broken by 1 row(s)" in text
    assert table_row(text, "r2")[1:3] == ["0.8500", "—"]  # the kept metrics are not shown as this run's
    assert "_Not evaluated: the pipeline stopped before the evaluate stage._" in text


def test_pipeline_outcome_must_be_known():
    with pytest.raises(
        rpt.ReportError, match="--pipeline-outcome: expected success or failure, got 'skipped'"
    ):
        rpt.pipeline_run("skipped", None)
