"""CanaryPlan and Thresholds are the one place of `housing canary`'s limits: the options carry none of their
own, and every bad value is refused before anything is sent to the cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kserve_standin import KServeStandin, KubeApiStandin

from housing.deploy.analysis import Thresholds
from housing.deploy.canary import CanaryPlan
from housing.deploy.isvc import CanaryError
from settings_support import assert_options_follow, command_options

HOUSING = str(Path(sys.executable).with_name("housing"))


def test_options_take_defaults_limits_and_help_from_the_models():
    options = command_options("canary")
    assert_options_follow(CanaryPlan, options)
    assert_options_follow(Thresholds, options)
    assert "[default: 2; >= 1]" in options["--failure-limit"].help
    assert "[default: 1.5; >= 1]" in options["--latency-ratio"].help


def test_steps_are_parsed_and_checked_by_the_plan():
    assert CanaryPlan(steps="10→50→100").steps == (10, 50, 100)
    assert CanaryPlan(steps="5, 25,100").steps == (5, 25, 100)
    with pytest.raises(
        CanaryError, match=r"steps='ten,100': expected comma-separated integers .*\(--steps\)"
    ):
        CanaryPlan(steps="ten,100")


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("max_error_rate", 1.5, "must be <= 1"),
        ("error_rate_margin", -0.1, "must be >= 0"),
        ("max_p95_ms", 0, "must be > 0"),
        ("latency_ratio", 0.9, "must be >= 1"),
        ("mae_ratio", 0.5, "must be >= 1"),
        ("max_mae", -1, "must be > 0"),
        ("min_requests", -5, "must be >= 0"),
    ],
)
def test_thresholds_are_checked(field, value, rule):
    """Bug fixed: the thresholds had no checks at all (a negative error rate, or a ratio below 1 that rolls
    back a canary exactly as good as a degraded stable revision, were accepted)."""
    flag = f"--{field.replace('_', '-')}"
    with pytest.raises(
        CanaryError, match=rf"canary setting {field}={value} is out of range: {rule}.* \({flag}\)"
    ):
        Thresholds(**{field: value})


def test_max_p95_ms_is_the_latency_limit_in_seconds():
    assert Thresholds(max_p95_ms=250).max_p95_latency_s == 0.25


def test_a_bad_rate_window_is_refused_before_anything_is_patched(tmp_path):
    """Bug fixed: the plan accepted any --rate-window; the controller sent its first patch (10% to the canary)
    and only then did the Prometheus query refuse the window, leaving the canary half started."""
    with KubeApiStandin(KServeStandin()) as api:
        api.kubeconfig(tmp_path)
        env = os.environ | {"HOUSING_LOG_LEVEL": "WARNING"}
        env.pop("SLACK_WEBHOOK_URL", None)
        proc = subprocess.run(
            [
                HOUSING,
                "canary",
                "--image",
                "registry.local/housing:v2",
                "-n",
                "housing-test",
                "--rate-window",
                "5 minutes",
                "--kubeconfig",
                str(tmp_path / "kubeconfig"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        patches = [r for r in api.requests if r["method"] == "PATCH"]
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: canary setting rate_window='5 minutes': must be a Prometheus duration like 30s or 2m "
        "(--rate-window)"
    ]
    assert patches == []
    with pytest.raises(CanaryError, match="rate_window"):
        CanaryPlan(rate_window="1 m")
    assert CanaryPlan(rate_window="90s").rate_window == "90s"
