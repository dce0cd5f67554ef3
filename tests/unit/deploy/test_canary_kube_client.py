"""The real ``kubernetes`` client against the Kubernetes API stand-in; ``housing canary`` CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kserve_standin import KServeStandin, KubeApiStandin

from housing.deploy.isvc import CanaryError
from housing.deploy.kube import KubeInferenceService

HOUSING = str(Path(sys.executable).with_name("housing"))


@pytest.fixture
def api(tmp_path):
    with KubeApiStandin(KServeStandin()) as server:
        server.kubeconfig(tmp_path)
        yield server


def test_get_and_merge_patch_through_the_kubernetes_client(api, tmp_path):
    isvc = KubeInferenceService("housing", "housing-test", kubeconfig=str(tmp_path / "kubeconfig"))
    assert isvc.get()["spec"]["predictor"]["containers"][0]["image"] == "registry.local/housing:v1"
    isvc.patch({"spec": {"predictor": {"canaryTrafficPercent": 10}}})
    after = isvc.patch({"spec": {"predictor": {"canaryTrafficPercent": None}}})
    assert "canaryTrafficPercent" not in after["spec"]["predictor"]
    patches = [r for r in api.requests if r["method"] == "PATCH"]
    assert [r["content_type"] for r in patches] == ["application/merge-patch+json"] * 2
    # null must reach the server: that is how a merge patch removes canaryTrafficPercent (= promote)
    assert patches[1]["body"] == {"spec": {"predictor": {"canaryTrafficPercent": None}}}


def test_api_errors_become_one_line_canary_errors(api, tmp_path):
    kubeconfig = str(tmp_path / "kubeconfig")
    with pytest.raises(CanaryError, match="InferenceService housing-test/missing not found"):
        KubeInferenceService("missing", "housing-test", kubeconfig=kubeconfig).get()
    api.token = "rotated"
    with pytest.raises(CanaryError, match="HTTP 401"):
        KubeInferenceService("housing", "housing-test", kubeconfig=kubeconfig).get()
    with pytest.raises(CanaryError, match="Kubernetes configuration"):
        KubeInferenceService("housing", "housing-test", kubeconfig=str(tmp_path / "nope"))


def test_unreachable_api_server_is_a_canary_error(tmp_path):
    (tmp_path / "kubeconfig").write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    isvc = KubeInferenceService("housing", "ns", kubeconfig=str(tmp_path / "kubeconfig"))
    isvc._api.api_client.configuration.retries = 0
    with pytest.raises(CanaryError, match="cannot reach the Kubernetes API"):
        isvc.get()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"HOUSING_LOG_LEVEL": "WARNING"}
    env.pop("SLACK_WEBHOOK_URL", None)
    return subprocess.run([HOUSING, "canary", *args], capture_output=True, text=True, env=env, timeout=60)


def test_cli_dry_run_prints_patches_and_changes_nothing(api, tmp_path):
    proc = run_cli(
        "--dry-run",
        "--image",
        "registry.local/housing:v2",
        "-n",
        "housing-test",
        "--kubeconfig",
        str(tmp_path / "kubeconfig"),
        "--report",
        str(tmp_path / "r.json"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "DRY RUN" in proc.stdout
    assert '"canaryTrafficPercent": 10' in proc.stdout
    assert '"image": "registry.local/housing:v2"' in proc.stdout
    assert not [r for r in api.requests if r["method"] == "PATCH"]
    assert json.loads((tmp_path / "r.json").read_text())["outcome"] == "dry_run"


def test_cli_abort_rolls_back_with_exit_code_1(api, tmp_path):
    api.standin.set_canary_state("registry.local/housing:v2", 50)
    proc = run_cli("--abort", "-n", "housing-test", "--kubeconfig", str(tmp_path / "kubeconfig"))
    assert proc.returncode == 1
    assert "ROLLED BACK" in proc.stdout
    assert api.standin.predictor["canaryTrafficPercent"] == 0


def test_cli_usage_errors_are_one_line(api, tmp_path):
    proc = run_cli("--steps", "50,10", "--kubeconfig", str(tmp_path / "kubeconfig"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: canary setting steps='50,10': percents must be in 1..100 and end with 100 (--steps)"
    ]


def test_cli_refuses_to_start_when_prometheus_is_unreachable(api, tmp_path):
    proc = run_cli(
        "--image",
        "registry.local/housing:v2",
        "-n",
        "housing-test",
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--kubeconfig",
        str(tmp_path / "kubeconfig"),
    )
    assert proc.returncode == 2
    assert "error: Prometheus http://127.0.0.1:9 unreachable" in proc.stderr
    assert not [r for r in api.requests if r["method"] == "PATCH"]
