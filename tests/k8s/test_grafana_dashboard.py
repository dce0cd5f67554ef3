"""The Grafana dashboard JSON: required panels, datasource variable, consistent queries and layout."""

from __future__ import annotations

import json
import re

import pytest
from k8s_support import MONITORING

DASHBOARD = json.loads((MONITORING / "dashboards/housing-model.json").read_text())
PANELS = DASHBOARD["panels"]
# Metric names the dashboard may use: the model server contract, the drift gauges, Prometheus' ALERTS.
KNOWN_METRICS = {
    "model_prediction_total",
    "model_prediction_errors_total",
    "model_prediction_latency_seconds_bucket",
    "model_version_info",
    "model_prediction_value_bucket",
    "model_mae_score",
    "model_r2_score",
    "model_ppe10_score",
    "model_ppe_score",
    "model_inference_log_dropped_total",
    "model_inference_log_written_rows_total",
    "model_inference_log_pending_rows",
    "model_inference_log_healthy",
    "model_inference_log_write_errors_total",
    "model_feedback_total",
    "model_feedback_absolute_error_total",
    "model_feedback_within_tolerance_total",
    "model_feedback_within_10pct_total",
    "model_feedback_rejected_total",
    "model_data_drift_score",
    "model_data_drift_threshold",
    "ALERTS",
}
REQUIRED_PANELS = {  # the seed's nine panels, by a distinctive part of their title
    "MAE": "MAE",
    "R²": "R²",
    "latency percentiles": "p50 / p95 / p99",
    "RPS": "Requests per second",
    "traffic split": "Traffic split by variant / revision",
    "accuracy": "PPE",
    "alerts": "Firing alerts",
    "errors": "Errors by reason",
    "champion vs challenger": "Champion vs challenger",
}


def exprs():
    return [t["expr"] for p in PANELS for t in p["targets"]]


def test_identity_and_schema():
    assert DASHBOARD["uid"] == "housing-model"
    assert DASHBOARD["title"]
    assert isinstance(DASHBOARD["schemaVersion"], int)
    assert DASHBOARD["schemaVersion"] >= 30
    assert len(PANELS) >= 9


@pytest.mark.parametrize("what", sorted(REQUIRED_PANELS))
def test_required_panel_present_with_queries(what):
    matches = [p for p in PANELS if REQUIRED_PANELS[what] in p["title"]]
    assert matches, f"no panel for {what}"
    assert all(p["targets"] and all(t["expr"].strip() for t in p["targets"]) for p in matches)


def test_latency_panel_shows_p50_p95_p99():
    panel = next(p for p in PANELS if "p50 / p95 / p99" in p["title"])
    quantiles = sorted(
        re.search(r"histogram_quantile\((0\.\d+)", t["expr"]).group(1) for t in panel["targets"]
    )
    assert quantiles == ["0.5", "0.95", "0.99"]


def test_datasource_variable_drives_every_panel_and_target():
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "model"} <= set(variables)
    for panel in PANELS:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    for name in ("namespace", "model"):
        assert variables[name]["datasource"]["uid"] == "${datasource}"


def test_queries_use_only_contract_metrics_and_filter_by_namespace():
    for expr in exprs():
        names = set(re.findall(r"\b(model_[a-z0-9_]+|ALERTS)\b", expr))
        assert names, expr
        assert names <= KNOWN_METRICS, expr
        assert 'namespace="$namespace"' in expr, expr
        assert "[$__rate_interval]" in expr or "rate(" not in expr, expr


def test_panel_ids_unique_and_layout_fits_the_grid():
    ids = [p["id"] for p in PANELS]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in PANELS:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        assert pos["w"] > 0
        assert pos["h"] > 0
        area = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"panel {panel['title']} overlaps another"
        cells |= area


def test_accuracy_panels_use_the_counters_that_are_exact_across_replicas():
    """MAE and PPE as the alerts compute them (summed counters), never the per-pod rolling gauges."""
    for title, numerator in (
        ("MAE", "model_feedback_absolute_error_total"),
        ("PPE", "model_feedback_within"),
    ):
        panel = next(
            p for p in PANELS if REQUIRED_PANELS[title if title == "MAE" else "accuracy"] in p["title"]
        )
        for target in panel["targets"]:
            assert re.search(rf"sum by \([^)]*\) \(rate\({numerator}", target["expr"]), target["expr"]
            assert "sum by (variant, version) (rate(model_feedback_total{" in target["expr"]
            assert "_score" not in target["expr"]


def test_inference_log_panels_show_drops_by_reason_backlog_and_health():
    exprs_by_title = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in PANELS}
    log_panels = " ".join(e for title, e in exprs_by_title.items() if title.startswith("Inference log"))
    for metric in (
        "model_inference_log_written_rows_total",
        "sum by (reason) (rate(model_inference_log_dropped_total",
        "model_inference_log_pending_rows",
        "model_inference_log_healthy",
    ):
        assert metric in log_panels, metric
    assert any("model_feedback_rejected_total" in e for e in exprs_by_title.values())
