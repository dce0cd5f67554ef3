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
