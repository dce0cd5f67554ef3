"""Export a drift run's result to Prometheus through a Pushgateway: ``housing drift-push``.

The model server cannot know about drift (it needs the training reference and a window of traffic); the
drift stage (``housing drift`` -> reports/drift.json) does. Whoever runs it (the retrain workflow's drift
job, or an in-cluster CronJob reading the shipped inference log) pushes the result with this command, and
the ``ModelDataDrift`` alert (k8s/monitoring/prometheusrule.yaml) compares
``model_data_drift_score`` with ``model_data_drift_threshold``. The Pushgateway keeps the last values until
the next push; scrape it with ``honor_labels: true`` so the ``namespace``/``model`` grouping labels survive.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from housing.errors import DataError
from housing.monitoring import httpjson

JOB = "housing-drift"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.-]+$")
GAUGES = {
    "model_data_drift_score": "Share of drifted features in the last drift run (0..1).",
    "model_data_drift_threshold": "Drift score above which retraining is recommended (drift.threshold).",
    "model_data_drift_features_drifted": "Number of features flagged as drifted in the last drift run.",
    "model_data_drift_retrain_recommended": "1 if the last drift run recommended retraining, else 0.",
    "model_data_drift_last_run_timestamp_seconds": "Unix time at which the drift result was pushed.",
}


def drift_values(report: dict[str, Any], now: float | None = None) -> dict[str, float]:
    """Gauge values from a reports/drift.json document (contract: docs/drift.md, "Outputs")."""
    try:
        return {
            "model_data_drift_score": float(report["drift_score"]),
            "model_data_drift_threshold": float(report["threshold"]),
            "model_data_drift_features_drifted": float(len(report["drifted_features"])),
            "model_data_drift_retrain_recommended": float(bool(report["retrain_recommended"])),
            "model_data_drift_last_run_timestamp_seconds": time.time() if now is None else now,
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"drift report: field {exc} missing or not a number (see reports/drift.json)"
        ) from exc


def render(values: dict[str, float]) -> str:
    """Prometheus text exposition of the gauges (labels come from the Pushgateway grouping key)."""
    lines = []
    for name, value in values.items():
        lines += [f"# HELP {name} {GAUGES[name]}", f"# TYPE {name} gauge", f"{name} {value!r}"]
    return "\n".join(lines) + "\n"


def push(drift_json: Path, gateway_url: str, *, model: str, namespace: str, timeout: float = 10.0) -> str:
    """PUT the drift gauges to ``gateway_url`` under job=housing-drift/model/namespace; returns the URL."""
    try:
        report = json.loads(drift_json.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"drift report {drift_json}: cannot read JSON ({exc})") from exc
    for field, value in (("model", model), ("namespace", namespace)):
        if not _LABEL_VALUE.match(value):
            raise DataError(f"drift push: {field} {value!r} must match {_LABEL_VALUE.pattern}")
    url = f"{gateway_url.rstrip('/')}/metrics/job/{JOB}/namespace/{namespace}/model/{model}"
    body = render(drift_values(report)).encode()
    # PUT replaces every metric of this group: a stale value never survives a new run.
    try:
        resp = httpjson.request(
            "PUT", url, data=body, headers={"Content-Type": "text/plain; version=0.0.4"}, timeout=timeout
        )
    except (OSError, ValueError) as exc:
        raise DataError(f"Pushgateway {gateway_url}: push failed ({exc})") from exc
    if not resp.ok:
        raise DataError(f"Pushgateway {gateway_url}: HTTP {resp.status} {resp.text()}")
    return url
