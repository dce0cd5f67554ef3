"""`housing kfp submit`: what kfp.Client sends a KFP API (a stand-in on 127.0.0.1), and what it refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from kfp_api import KfpApi
from kfp_support import ROOT, require_kfp
from typer.testing import CliRunner

from housing.errors import ConfigError
from housing.kfp.package import KfpError, read_package, run_arguments
from housing.kfp.pipeline import IMAGE_PLACEHOLDER
from housing.kfp.submit import RETRAIN_CRON, kfp_cron

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/housing-mlops@sha256:" + "b" * 64
URIS = {
    "raw_data_uri": "s3://housing-data/raw/california_housing.csv",
    "production_window_uri": "s3://housing-data/production/window.csv",
    "mlflow_tracking_uri": "http://mlflow.mlflow.svc:5000",
}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory, params) -> Path:
    """The pipeline compiled as CD would: with the pushed image's digest."""
    require_kfp()
    from housing.kfp.pipeline import compile_pipeline

    return compile_pipeline(params, tmp_path_factory.mktemp("submit") / "housing_pipeline.yaml", IMAGE)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    with KfpApi() as stand_in:
        yield stand_in


def _submit(package: Path, api: KfpApi, *args: str):
    from housing.cli import app

    return CliRunner().invoke(
        app,
        [
            "kfp", "submit", "--host", api.url, "--package", str(package),
            *(f"--{key.replace('_', '-')}={value}" for key, value in URIS.items()), *args,
        ],
    )  # fmt: skip


def test_retrain_cron_is_retrain_workflows():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "retrain.yml").read_text())
    # PyYAML reads the `on:` key as True (YAML 1.1).
    assert [entry["cron"] for entry in workflow[True]["schedule"]] == [RETRAIN_CRON]
    assert kfp_cron(RETRAIN_CRON) == "0 17 5 * * 1"


def test_run_uploads_the_package_and_starts_a_run(package: Path, api: KfpApi):
    result = _submit(package, api, "-p", "train.hgb.learning_rate=0.1", "--force")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert api.routes_called() == [
        "GET /healthz",
        "GET /pipelines",
        "POST /pipelines/upload",
        "GET /pipelines/pipeline-1/versions",
        "POST /pipelines/upload_version",
        "GET /experiments",
        "POST /experiments",
        "POST /runs",
    ]
    upload = api.requests[2]
    assert upload.query["name"] == "housing"
    assert package.read_bytes() in upload.body  # multipart: the IR itself
    version = api.requests[4]
    assert re.fullmatch(r"housing-[0-9a-f]{12}", version.query["name"])
    assert version.query["pipelineid"] == "pipeline-1"
    run = api.requests[-1].json()
    assert run["display_name"] == "housing-retrain"
    assert run["experiment_id"] == "experiment-1"
    assert run["pipeline_version_reference"] == {
        "pipeline_id": "pipeline-1",
        "pipeline_version_id": "version-2",
    }
    parameters = run["runtime_config"]["parameters"]
    assert {key: parameters[key] for key in URIS} == URIS
    assert parameters["force"] is True
    assert parameters["train"]["hgb"]["learning_rate"] == 0.1
    assert parameters["train"]["hgb"]["max_iter"] == 1000  # the package's default, validated
    assert summary["run_id"] == "run-1"
    assert summary["version_name"] == version.query["name"]


def test_recurring_run_uses_retrain_cron_and_replaces_the_previous_one(package: Path, api: KfpApi):
    first = _submit(package, api, "--recurring")
    assert first.exit_code == 0, first.output
    second = _submit(package, api, "--recurring")
    assert second.exit_code == 0, second.output
    # The same bytes: the pipeline and its version are found, not uploaded again.
    assert [r for r in api.routes_called() if r.startswith("POST /pipelines")] == [
        "POST /pipelines/upload",
        "POST /pipelines/upload_version",
    ]
    assert len(api.experiments) == 1
    (job,) = api.recurring_runs
    assert job["trigger"] == {"cron_schedule": {"cron": "0 17 5 * * 1"}}
    assert job["max_concurrency"] == "1" or job["max_concurrency"] == 1
    assert job["no_catchup"] is True
    assert job["mode"] == "ENABLE"
    assert job["runtime_config"]["parameters"]["force"] is False
    deleted = [r for r in api.requests if r.method == "DELETE"]
    assert [r.path for r in deleted] == [
        "/recurringruns/" + json.loads(first.output[first.output.index("{") :])["recurring_run_id"]
    ]
    assert not api.runs


def test_placeholder_image_is_refused_before_any_request(compiled: Path, api: KfpApi):
    result = _submit(compiled, api)
    assert isinstance(result.exception, KfpError)
    assert f"its components run the placeholder image '{IMAGE_PLACEHOLDER}'; compile with --image" in str(
        result.exception
    )
    assert api.requests == []


def test_bad_override_is_refused_before_any_request(package: Path, api: KfpApi):
    result = _submit(package, api, "-p", "evaluate.gates.mae_max=-1")
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "--set: evaluate.gates.mae_max: Input should be greater than 0"
    assert api.requests == []


def test_api_error_names_the_host_and_status(package: Path, api: KfpApi):
    api.refuse["create_run"] = 403
    result = _submit(package, api)
    assert isinstance(result.exception, KfpError)
    message = str(result.exception)
    assert message.startswith(f"{api.url}: the submission to the KFP API failed: HTTP 403: ")
    assert "refused by the stand-in (403)" in message
    assert "\n" not in message


def test_unreachable_host_is_one_line(package: Path, params):
    from housing.kfp.submit import submit

    arguments = run_arguments(read_package(package), force=False, **URIS)
    with pytest.raises(KfpError, match=r"http://127\.0\.0\.1:9: the submission to the KFP API failed"):
        submit(read_package(package), arguments, host="http://127.0.0.1:9", run_name="x")
