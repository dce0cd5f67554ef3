"""The GitOps loop, run for real: this repository's workflow files executed by act against local stand-ins.

Each scenario builds a repository from the committed HEAD (origin + work clone), a DVC remote in a local
directory holding what the team pushed, and runs one workflow as GitHub would for one event:

- a pull request that changes ``train.hgb.learning_rate`` (dvc.lock and reports committed, outputs pushed):
  lint, tests, the pipeline and the report are green, and the comment that reaches the API holds the metrics
  and params diff against main;
- a pull request whose change misses a gate: the pipeline job is red and the comment still arrives (replacing
  the previous push's green one), showing the failed gate;
- CD for a commit of main (cd.yml as ci.yml calls it after CI passed): the model job pulls ``models/`` from
  the remote and verifies it against dvc.lock; a manual run for a commit whose CI failed is refused;
- a scheduled retrain with a drifted production window in the inference log: drift recommends, the model is
  retrained, the artifacts are pushed to the remote, and a pull request with the new dvc.lock, data.dvc and
  report reaches the API.

What stands in (tests/workflows_run/README.md): GitHub's REST API and artifact store (HTTPS on 127.0.0.1), a
local bare repository as origin, a directory as the DVC remote and as the inference-log bucket. AWS, ECR and
EKS steps are skipped by their variables being unset.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from act import ROOT

from clones import clone_env, run_ok
from markdown_tables import table_row

PYTHON_BIN = Path(sys.executable).parent
DVC = str(PYTHON_BIN / "dvc")
MARKER = "<!-- housing-model-report -->"
EXPERIMENT_FILES = (
    "params.yaml",
    "dvc.lock",
    "reports/metrics.json",
    "reports/slices.json",
    "reports/drift.json",
)
# .ci/run runs the whole suite itself: under act the test job proves its wiring on one small module.
NARROW_TESTS = {"PYTEST_ADDOPTS": "tests/unit/test_config.py"}
RETRAIN_FILES = {"dvc.lock", "data.dvc", "reports/metrics.json", "reports/slices.json", "reports/drift.json"}


def _with_param(params_text: str, dotted: str, value: Any) -> str:
    params = yaml.safe_load(params_text)
    *path, key = dotted.split(".")
    node = params
    for part in path:
        node = node[part]
    node[key] = value
    return yaml.safe_dump(params, sort_keys=False)


class Team:
    """What the team had before the events: main's outputs on the DVC remote, and an experiment a developer
    ran (`dvc repro` with learning_rate 0.1) whose outputs went to a copy of that remote."""

    def __init__(self, directory: Path) -> None:
        self.remote_main = directory / "remote-main"
        self.remote_experiment = directory / "remote-experiment"
        dev = directory / "dev"
        run_ok(["git", "clone", "-q", str(ROOT), str(dev)], directory, dict(os.environ))
        env = clone_env(dev)
        run_ok([sys.executable, "-m", "housing.data_setup"], dev, env)
        run_ok([DVC, "repro"], dev, env)
        assert run_ok(["git", "status", "--porcelain"], dev, env) == "", (
            "main's outputs must reproduce dvc.lock"
        )
        run_ok([DVC, "remote", "add", "--local", "-d", "main", str(self.remote_main)], dev, env)
        run_ok([DVC, "push", "-q"], dev, env)
        self.main_metrics = json.loads((dev / "reports/metrics.json").read_text())
        self.main_model = {
            name: (dev / "models" / name).read_bytes() for name in ("model.onnx", "metadata.json")
        }
        self.main_model_dir = directory / "main-model"
        shutil.copytree(dev / "models", self.main_model_dir)
        self.raw_data = directory / "raw.csv"
        shutil.copyfile(dev / "data" / "raw" / "california_housing.csv", self.raw_data)
        shutil.copytree(self.remote_main, self.remote_experiment)
        params = dev / "params.yaml"
        params.write_text(_with_param(params.read_text(), "train.hgb.learning_rate", 0.1))
        run_ok([DVC, "repro"], dev, env)
        run_ok([DVC, "remote", "add", "--local", "experiment", str(self.remote_experiment)], dev, env)
        run_ok([DVC, "push", "-q", "-r", "experiment"], dev, env)
        self.experiment = {name: (dev / name).read_text() for name in EXPERIMENT_FILES}

    def remote(self, tmp_path: Path, *, experiment: bool = False) -> Path:
        """A copy of the team's remote for one scenario (scenarios may push to it)."""
        copy = tmp_path / "dvc-remote"
        shutil.copytree(self.remote_experiment if experiment else self.remote_main, copy)
        return copy


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> Team:
    return Team(tmp_path_factory.mktemp("team"))


def _report_comments(api, number: int) -> list[dict[str, Any]]:
    return [c for c in api.comments_on(number) if c["body"].startswith(MARKER)]


# --- pull request = experiment ------------------------------------------------------------------------------


def test_a_learning_rate_experiment_is_green_and_its_comment_holds_the_diff(
    team, scenario_repo, run_act, tmp_path
):
    api = run_act.services.api
    remote = team.remote(tmp_path, experiment=True)
    scenario_repo.commit("Experiment: learning rate 0.1", team.experiment, branch="exp/learning-rate")
    pull = api.open_pull_request("exp/learning-rate")
    event = scenario_repo.pull_request_event(pull)
    variables = {"DVC_REMOTE_URL": str(remote)}

    lint = run_act(scenario_repo, "pull_request", ".github/workflows/ci.yml", job="lint", event_payload=event)
    assert lint.results == {"lint": "success"}, lint.log
    tests = run_act(
        scenario_repo,
        "pull_request",
        ".github/workflows/ci.yml",
        job="test",
        event_payload=event,
        env=NARROW_TESTS,
    )
    assert tests.results == {"test": "success"}
    assert "passed" in tests.job("test").text

    result = run_act(
        scenario_repo, "pull_request", ".github/workflows/ci.yml", job="comment", event_payload=event,
        variables=variables,
    )  # fmt: skip
    assert result.results == {"pipeline": "success", "comment": "success"}
    pipeline = result.job("pipeline")
    for step in ("remote", "pipeline", "lock", "report"):
        assert pipeline.step(step) == "success", step
    assert "every output pinned by dvc.lock and data.dvc is on the DVC remote" in pipeline.text
    assert "Running stage 'train'" not in pipeline.text  # the pushed outputs were pulled, not rebuilt

    (comment,) = _report_comments(api, pull["number"])
    body = comment["body"]
    assert "✅ gates passed" in body.splitlines()[1]
    assert table_row(body, "`train.hgb.learning_rate`")[1:] == ["0.0500", "0.1000"]
    base_r2 = f"{team.main_metrics['test']['r2']:.4f}"
    new_r2 = f"{json.loads(team.experiment['reports/metrics.json'])['test']['r2']:.4f}"
    assert table_row(body, "r2")[1:3] == [base_r2, new_r2]
    assert "in the [workflow artifact](" in body  # plots linked inside GitHub, not published
    figures = run_act.services.artifacts.artifact("pr-figures").files()
    assert {"pred_vs_actual.png", "residuals.png", "feature_importance.png"} <= {
        Path(n).name for n in figures
    }
    assert api.unexpected == []


def test_a_change_that_misses_a_gate_is_red_and_its_comment_says_why(team, scenario_repo, run_act, tmp_path):
    api = run_act.services.api
    remote = team.remote(tmp_path)
    params = _with_param((scenario_repo.work / "params.yaml").read_text(), "train.hgb.max_iter", 3)
    scenario_repo.commit("Experiment: 3 boosting rounds", {"params.yaml": params}, branch="exp/tiny")
    pull = api.open_pull_request("exp/tiny")
    # The previous push of this PR was green: that comment must not stay.
    api.add_comment(pull["number"], f"{MARKER}\n# Model report — ✅ gates passed\n")

    result = run_act(
        scenario_repo, "pull_request", ".github/workflows/ci.yml", job="comment",
        event_payload=scenario_repo.pull_request_event(pull), variables={"DVC_REMOTE_URL": str(remote)},
    )  # fmt: skip
    assert result.results == {"pipeline": "failure", "comment": "success"}
    pipeline = result.job("pipeline")
    assert pipeline.step("pipeline") == "failure"
    assert pipeline.step("report") == "success"
    (comment,) = _report_comments(api, pull["number"])  # updated in place, not a second comment
    body = comment["body"]
    assert "❌ gates failed" in body.splitlines()[1]
    assert "## ❌ The pipeline failed at `evaluate`" in body
    assert "quality gate(s) missed" in body
    assert table_row(body, "`evaluate.gates.r2_min`")[3] == "❌ fail"
    assert table_row(body, "`train.hgb.max_iter`")[1:] == ["1,000", "3"]
    assert api.unexpected == []


# --- merge = deploy -----------------------------------------------------------------------------------------


def test_cd_pulls_the_model_dvc_lock_pins_and_verifies_it(team, scenario_repo, run_act, tmp_path):
    """cd.yml as ci.yml calls it on a push to main after every CI job passed (workflow_call)."""
    remote = team.remote(tmp_path)
    result = run_act(
        scenario_repo, "workflow_call", ".github/workflows/cd.yml", job="model",
        event_payload=scenario_repo.push_event("main"), variables={"DVC_REMOTE_URL": str(remote)},
    )  # fmt: skip
    assert result.results == {"model": "success"}
    model = result.job("model")
    assert "files fetched" in model.text  # pulled from the remote,
    assert "Running stage" not in model.text  # not rebuilt
    files = {
        Path(name).name: content
        for name, content in run_act.services.artifacts.artifact("model").files().items()
    }
    assert set(files) == {"model.onnx", "metadata.json"}
    shipped = json.loads(files["metadata.json"])
    assert f"model artifact {shipped['model_version']}" in model.text
    assert files == team.main_model  # the bytes main's dvc.lock pins, as the team pushed them
    assert run_act.services.api.unexpected == []


def test_a_manual_deploy_of_a_commit_whose_ci_failed_is_refused(scenario_repo, run_act, tmp_path):
    api = run_act.services.api
    sha = scenario_repo.head()
    api.add_workflow_run("ci.yml", sha, status="completed", conclusion="failure")
    result = run_act(
        scenario_repo, "workflow_dispatch", ".github/workflows/cd.yml", job="model",
        event_payload=scenario_repo.workflow_dispatch_event({"environment": "staging", "tag-latest": False}),
    )  # fmt: skip
    assert result.results == {"model": "failure"}
    model = result.job("model")
    assert model.step("A manual run deploys only a commit of main whose CI passed") == "failure"
    assert f"commit {sha} has no successful ci.yml run" in model.text
    assert "model artifact" not in model.text  # nothing after the gate ran
    queries = [r for r in api.requests if r.path.endswith("/actions/workflows/ci.yml/runs")]
    assert queries
    assert queries[0].query["head_sha"] == [sha]


# --- schedule = retraining ----------------------------------------------------------------------------------


def _drifted_inference_log(directory: Path, team: Team, rows: int = 2000) -> Path:
    """What serving pods ship: main's model's predictions on coastal_boom traffic, with ground truth."""
    from housing.artifact import load_verified, onnx_session
    from housing.config import load_params
    from housing.frames import read_csv
    from housing.inference_log import InferenceLogWriter
    from housing.simulate import scenario_window

    params = load_params(ROOT / "params.yaml")
    features = list(params.data.features)
    raw = read_csv(team.raw_data)
    window = scenario_window(raw, "coastal_boom", rows, seed=11, target=params.data.target)
    metadata, payload = load_verified(team.main_model_dir)
    session = onnx_session(payload)
    X = window[features].to_numpy(np.float32)
    predictions = session.run(None, {metadata.input_name: X})[0].ravel()
    writer = InferenceLogWriter(directory)
    writer.start()
    now = time.time()
    for i in range(rows):
        request_id = f"req-{i:05d}"
        writer.log_predictions(
            ts=now + i,
            request_id=request_id,
            model=metadata.model_name,
            model_version=metadata.model_version,
            variant="champion",
            feature_names=features,
            features=X[i : i + 1],
            predictions=predictions[i : i + 1],
            latency_s=0.001,
        )
        writer.log_feedback(
            ts=now + i + 0.5, request_id=request_id, actuals=[float(window[params.data.target].iat[i])]
        )
    writer.close()
    assert writer.dropped_rows == 0
    return directory


def test_a_scheduled_retrain_on_drifted_traffic_opens_a_pull_request(team, scenario_repo, run_act, tmp_path):
    api = run_act.services.api
    remote = team.remote(tmp_path)
    logs = _drifted_inference_log(tmp_path / "inference-log", team)
    token = api.add_user("retrain-bot")
    before = {p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()}

    result = run_act(
        scenario_repo, "schedule", ".github/workflows/retrain.yml",
        event_payload=scenario_repo.schedule_event("17 5 * * 1"),
        variables={"DVC_REMOTE_URL": str(remote), "INFERENCE_LOG_URI": f"file://{logs}"},
        secrets={"RETRAIN_PR_TOKEN": token},
    )  # fmt: skip
    assert result.results == {"keepalive": "success", "retrain": "success", "pull-request": "success"}
    assert "retrain.yml" in api.enabled_workflows
    retrain = result.job("retrain")
    assert "retrain_recommended=true" in retrain.text
    assert (
        retrain.step("Push the new data and artifacts to the DVC remote (CI and CD pull them)") == "success"
    )

    # the pull request: opened with RETRAIN_PR_TOKEN, from retrain/auto into main, with the retraining report
    (pull,) = [p for p in api.pulls.values() if p["head"]["ref"] == "retrain/auto"]
    assert pull["base"]["ref"] == "main"
    assert pull["user"]["login"] == "retrain-bot"
    assert pull["title"] == "Retrain: new model from the latest production window"
    assert "retrain recommended: **yes**" in pull["body"]
    assert [label["name"] for label in pull["labels"]] == ["retrain"]
    assert set(scenario_repo.origin_changed_files("retrain/auto")) >= RETRAIN_FILES
    assert scenario_repo.origin_refs()["main"] == scenario_repo.head("main")  # never pushed to main

    # everything the branch's dvc.lock and data.dvc pin is on the remote: its CI and CD can pull it
    after = {p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()}
    assert after > before
    check = tmp_path / "check"
    scenario_repo.origin_git("worktree", "add", "--detach", str(check), "retrain/auto")
    env = {**clone_env(check), "DVC_REMOTE_URL": str(remote)}
    run_ok([sys.executable, "-m", "housing.dvc_remote", "configure"], check, env)
    assert "is on the DVC remote" in run_ok([sys.executable, "-m", "housing.dvc_remote", "check"], check, env)
    assert api.unexpected == []
