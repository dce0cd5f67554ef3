"""Where each stage reads and writes, relative to the repository root (DVC runs stages from there).

Nothing a stage writes lives under ``data/``: that directory is a versioned input (``data.dvc``).
"""

from __future__ import annotations

from pathlib import Path

ARTIFACTS = Path("artifacts")
TRAIN_CSV = ARTIFACTS / "train.csv"
TEST_CSV = ARTIFACTS / "test.csv"
REFERENCE_CSV = ARTIFACTS / "reference.csv"
SKLEARN_MODEL = ARTIFACTS / "model.skops"
TRAIN_SUMMARY = ARTIFACTS / "train_summary.json"

MODELS = Path("models")  # the serving artifact: model.onnx + metadata.json

REPORTS = Path("reports")
VALIDATION_JSON = REPORTS / "validation.json"
VALIDATION_FAILED_JSON = REPORTS / "validation_failed.json"
METRICS_JSON = REPORTS / "metrics.json"
SLICES_JSON = REPORTS / "slices.json"
EVALUATION_FAILED_JSON = REPORTS / "evaluation_failed.json"
PLOTS = REPORTS / "plots"  # CSV plot data for `dvc plots`
FIGURES = REPORTS / "figures"  # PNGs for PR reports (dvc plots HTML needs a CDN)
DRIFT_JSON = REPORTS / "drift.json"
DRIFT_HTML = REPORTS / "drift_report.html"
# Not DVC outputs (untracked): volatile facts that differ between runs of the same inputs.
REGISTRATION_JSON = REPORTS / "registration.json"  # MLflow run id and version of the last registration
TIMINGS_JSON = REPORTS / "timings.json"  # fit time, single-row latency

INFERENCE_LOG_DIR = Path("logs/inference")
