"""Feedback scoring and memory, model directory precedence, settings checks, the value histogram."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from housing.errors import ConfigError
from housing.serving import settings as settings_module
from housing.serving.feedback import FeedbackStore, RollingScores
from housing.serving.metrics import ServingMetrics
from housing.serving.schema import RequestError
from housing.serving.settings import ServeSettings, resolve_model_dir


def test_rolling_scores_match_the_definitions():
    scores = RollingScores(window=3)
    first = scores.add([1.0], [1.05])
    assert first.n == 1
    assert math.isclose(first.mae, 0.05)
    assert first.ppe10 == 1.0
    assert math.isnan(first.r2)  # one actual value: R² undefined
    s = scores.add([2.0, 4.0, 2.0], [2.5, 3.0, 2.1])  # window keeps the last 3 pairs
    predicted, actual = np.array([2.0, 4.0, 2.0]), np.array([2.5, 3.0, 2.1])
    assert s.n == 3
    assert math.isclose(s.mae, np.abs(predicted - actual).mean())
    r2 = 1 - ((predicted - actual) ** 2).sum() / ((actual - actual.mean()) ** 2).sum()
    assert math.isclose(s.r2, r2)
    assert math.isclose(s.ppe10, 1 / 3)  # only 2.0 vs 2.1 is within ±10%
    assert math.isclose(s.ppe, 2 / 3)  # ±25% (the default tolerance) also takes 2.0 vs 2.5


def test_ppe_tolerance_is_configurable():
    scores = RollingScores(window=10, ppe_tolerance=0.05)
    s = scores.add([1.0, 1.04, 1.5], [1.0, 1.0, 1.0])
    assert math.isclose(s.ppe, 2 / 3)
    assert math.isclose(s.ppe10, 2 / 3)


def test_feedback_store_is_one_shot_and_checks_counts():
    store = FeedbackStore(capacity_rows=100, ttl_seconds=60)
    store.remember("r1", "handle", np.array([1.0, 2.0], dtype=np.float32), now=0.0)
    with pytest.raises(RequestError, match="got 1 value") as info:
        store.take("r1", [1.0], now=1.0)
    assert info.value.status == 400
    assert store.take("r1", [1.0, 2.0], now=1.0) == ("handle", [1.0, 2.0])
    with pytest.raises(RequestError, match="unknown, expired or already fed back") as info:
        store.take("r1", [1.0, 2.0], now=1.0)
    assert info.value.status == 404


def test_feedback_store_forgets_old_and_excess_entries():
    store = FeedbackStore(capacity_rows=3, ttl_seconds=10)
    store.remember("old", "h", np.ones(1, np.float32), now=0.0)
    with pytest.raises(RequestError):
        store.take("old", [1.0], now=11.0)  # expired
    for i in range(4):
        store.remember(f"r{i}", "h", np.ones(1, np.float32), now=20.0)
    assert len(store) == 3  # "old" and then r0 evicted to stay within 3 rows
    with pytest.raises(RequestError):
        store.take("r0", [1.0], now=20.0)
    store.remember("r3", "h", np.ones(2, np.float32), now=20.0)  # a reused id replaces its entry
    assert store.take("r3", [1.0, 2.0], now=20.0)[1] == [1.0, 1.0]


def test_model_dir_precedence(tmp_path, monkeypatch):
    kserve = tmp_path / "mnt-models"
    baked = tmp_path / "baked"
    monkeypatch.setattr(settings_module, "KSERVE_MODEL_DIR", kserve)
    monkeypatch.delenv(settings_module.BAKED_MODEL_DIR_ENV, raising=False)
    assert str(resolve_model_dir(None)) == "models"  # dev checkout
    monkeypatch.setenv(settings_module.BAKED_MODEL_DIR_ENV, str(baked))
    assert resolve_model_dir(None) == baked
    kserve.mkdir()
    assert resolve_model_dir(None) == baked  # an empty mount point is not a model
    (kserve / "metadata.json").write_text("{}")
    assert resolve_model_dir(None) == kserve  # KServe mounted a storageUri
    assert resolve_model_dir(tmp_path / "explicit") == tmp_path / "explicit"  # flag / HOUSING_MODEL_DIR


def test_an_unreadable_mounted_model_dir_is_a_clear_error(tmp_path, monkeypatch):
    """A /mnt/models the server's user may not enter (tests run as root, who may: simulate the refusal)."""
    kserve = tmp_path / "mnt-models"
    monkeypatch.setattr(settings_module, "KSERVE_MODEL_DIR", kserve)
    real_is_file = Path.is_file

    def is_file(path: Path) -> bool:
        if path.parent == kserve:
            raise PermissionError(13, "Permission denied", str(path))
        return real_is_file(path)

    monkeypatch.setattr(Path, "is_file", is_file)
    with pytest.raises(
        ConfigError, match=r"mnt-models: a model directory is mounted but this user \(uid \d+\)"
    ):
        resolve_model_dir(None)


@pytest.mark.parametrize(
    "override",
    [
        {"port": 70000},
        {"max_batch": 0},
        {"fault_error_rate": 1.5},
        {"range_tolerance": -0.1},
        {"log_format": "xml"},
        {"feedback_window": 1},
    ],
)
def test_settings_reject_out_of_range_values(override):
    with pytest.raises(ConfigError, match=next(iter(override))):
        ServeSettings(**override)


def test_value_histogram_counts_a_batch_like_prometheus_would():
    metrics = ServingMetrics(process_metrics=False)
    bound = metrics.bind("m", "champion", "sha-1")
    bound.observe_success(0.001, np.array([0.5, 0.6, 5.0, 7.0], dtype=np.float32))
    bound.observe_error("out_of_range")
    from prometheus_client import generate_latest

    families = {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    buckets = {
        s.labels["le"]: s.value
        for s in families["model_prediction_value"].samples
        if s.name.endswith("_bucket")
    }
    assert buckets["0.5"] == 1  # le is inclusive
    assert buckets["0.75"] == 2
    assert buckets["4.5"] == 2
    assert buckets["5.0"] == 3
    assert buckets["+Inf"] == 4
    sums = [s.value for s in families["model_prediction_value"].samples if s.name.endswith("_sum")]
    assert sums == [pytest.approx(13.1, rel=1e-6)]
    errors = {s.labels["reason"]: s.value for s in families["model_prediction_errors"].samples}
    assert errors["out_of_range"] == 1
    assert errors["injected"] == 0
    info = families["model_version_info"].samples[0]
    assert info.labels == {"model": "m", "variant": "champion", "version": "sha-1"}
    assert info.value == 1
    assert math.isnan(families["model_mae_score"].samples[0].value)  # no feedback yet


def test_serving_imports_no_training_stack():
    """The serving image has no training stack: importing the server and the CLI must not load it."""
    import subprocess
    import sys

    code = (
        "import sys, housing.cli, housing.serving.server, housing.serving.app, housing.inference_log\n"
        "heavy = sorted(m for m in ('sklearn', 'pandas', 'mlflow', 'evidently', 'skl2onnx', 'scipy') "
        "if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_request_stats_expose_prometheus_histograms_with_inclusive_buckets():
    from prometheus_client import generate_latest

    metrics = ServingMetrics(process_metrics=False)
    bound = metrics.bind("m", "challenger", "sha-2")
    for seconds in (0.0001, 0.0002, 0.002, 3.0):  # a bound itself, between bounds, beyond the last
        bound.observe_success(seconds, np.array([1.0], dtype=np.float32))
    bound.observe_success(0.001, np.array([float("nan"), 2.0], dtype=np.float32))
    text = generate_latest(metrics.registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    latency = {
        s.labels["le"]: s.value
        for s in families["model_prediction_latency_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert (latency["0.0001"], latency["0.00025"], latency["0.001"], latency["0.0025"]) == (1, 2, 3, 4)
    assert latency["1.0"] == 4
    assert latency["+Inf"] == 5
    assert families["model_prediction"].samples[0].value == 5
    assert families["model_prediction_instances"].samples[0].value == 6
    values = {
        s.labels["le"]: s.value
        for s in families["model_prediction_value"].samples
        if s.name.endswith("_bucket")
    }
    assert (values["1.0"], values["2.0"], values["5.0"], values["+Inf"]) == (4, 5, 5, 6)  # NaN: only +Inf
