"""drift.json -> model_data_drift_* gauges -> Pushgateway (a local stand-in that records the PUT)."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from housing.errors import DataError
from housing.monitoring.drift_export import drift_values, push, render
from loopback import LoopbackServer, QuietHandler

REPORT = {
    "drift_score": 0.375,
    "threshold": 0.3,
    "retrain_recommended": True,
    "drifted_features": ["MedInc", "AveOccup", "Latitude"],
    "n_reference": 5000,
    "n_current": 2000,
    "features": {},
    "evidently": None,
}


def test_values_and_exposition_follow_the_drift_contract():
    values = drift_values(REPORT, now=1700000000.0)
    assert values == {
        "model_data_drift_score": 0.375,
        "model_data_drift_threshold": 0.3,
        "model_data_drift_features_drifted": 3.0,
        "model_data_drift_retrain_recommended": 1.0,
        "model_data_drift_last_run_timestamp_seconds": 1700000000.0,
    }
    families = {f.name: f for f in text_string_to_metric_families(render(values))}
    assert set(families) == set(values)
    assert all(f.type == "gauge" for f in families.values())
    assert families["model_data_drift_score"].samples[0].value == 0.375


def test_incomplete_report_is_a_data_error():
    with pytest.raises(DataError, match="drift_score"):
        drift_values({"threshold": 0.3})


class Pushgateway(LoopbackServer):
    def __init__(self, status=200):
        self.requests = []
        outer = self

        class Handler(QuietHandler):
            def do_PUT(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                outer.requests.append((self.path, self.headers["Content-Type"], body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)
        self.start()


@pytest.fixture
def drift_json(tmp_path):
    path = tmp_path / "drift.json"
    path.write_text(json.dumps(REPORT))
    return path


def test_push_puts_the_group_with_namespace_and_model_labels(drift_json):
    gateway = Pushgateway()
    try:
        url = push(drift_json, gateway.url, model="housing", namespace="housing-production")
    finally:
        gateway.close()
    path, content_type, body = gateway.requests[0]
    assert path == "/metrics/job/housing-drift/namespace/housing-production/model/housing"
    assert url.endswith(path)
    assert content_type.startswith("text/plain")
    assert "model_data_drift_score 0.375" in body


def test_push_failures_are_data_errors(drift_json, tmp_path):
    gateway = Pushgateway(status=500)
    try:
        with pytest.raises(DataError, match="HTTP 500"):
            push(drift_json, gateway.url, model="housing", namespace="ns")
    finally:
        gateway.close()
    with pytest.raises(DataError, match="push failed"):
        push(drift_json, "http://127.0.0.1:9", model="housing", namespace="ns", timeout=2)
    with pytest.raises(DataError, match="model"):
        push(drift_json, "http://127.0.0.1:9", model="a/b", namespace="ns")
    with pytest.raises(DataError, match="cannot read JSON"):
        push(tmp_path / "missing.json", "http://127.0.0.1:9", model="housing", namespace="ns")


def test_cli_pushes_and_reports_errors_in_one_line(drift_json):
    import subprocess
    import sys
    from pathlib import Path

    housing = str(Path(sys.executable).with_name("housing"))
    gateway = Pushgateway()
    try:
        ok = subprocess.run(
            [housing, "drift-push", "--pushgateway-url", gateway.url, "--drift-json", str(drift_json)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        gateway.close()
    assert ok.returncode == 0, ok.stderr
    assert "/metrics/job/housing-drift/namespace/housing-production/model/housing" in ok.stdout
    bad = subprocess.run(
        [housing, "drift-push", "--pushgateway-url", "http://127.0.0.1:9", "--drift-json", "missing.json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: drift report missing.json")
