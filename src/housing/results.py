"""The typed results of the pipeline's stages: each stage's ``run`` returns one, and the JSON files the stages
write are these models dumped (and read back into them by later stages, the loop and the Kubeflow components;
the PR report reads the plain JSON, so that it can also show files written by older versions). One module, so
that no stage imports another to read its output.
"""

from __future__ import annotations

from typing import Any

from housing.config import StatTest
from housing.strict import Strict


class Check(Strict):
    check: str
    column: str | None
    rule: str
    count: int
    passed: bool
    examples: list[dict[str, Any]]


class ValidateResult(Strict):
    """The validation report (``reports/validation.json``)."""

    source: str
    sha256: str
    rows: int
    passed: bool
    failed: int
    checks: list[Check]


class SplitResult(Strict):
    train_rows: int
    test_rows: int
    reference_rows: int
    production_rows: int = 0  # labelled production-window rows added to the training split


class TrainResult(Strict):
    """What was fitted (``artifacts/train_summary.json``): no timings, the file is a DVC output."""

    model: str
    rows: int
    tuning: dict[str, Any] | None = None


class ExportResult(Strict):
    model_version: str
    onnx_sha256: str
    parity_max_abs_diff: float


class Gate(Strict):
    threshold: float
    value: float
    passed: bool


class ModelInfo(Strict):
    version: str
    onnx_bytes: int


class EvaluateResult(Strict):
    """``reports/metrics.json`` (and, for missed gates, ``reports/evaluation_failed.json``)."""

    test: dict[str, float | int]
    gates: dict[str, Gate]
    model: ModelInfo

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates.values())


class FeatureReport(Strict):
    test: StatTest
    statistic: float
    p_value: float | None
    psi: float
    drifted: bool


class EvidentlyCheck(Strict):
    drift_share: float
    drifted_features: list[str]
    agrees: bool


class DriftReport(Strict):
    """``reports/drift.json`` (contract: docs/drift.md, "Outputs")."""

    drift_score: float
    threshold: float
    retrain_recommended: bool
    drifted_features: list[str]
    n_reference: int
    n_current: int
    features: dict[str, FeatureReport]
    evidently: EvidentlyCheck | None


class RegisterResult(Strict):
    """A registration in the MLflow tracking store (``reports/registration.json``, untracked)."""

    model_name: str
    version: str
    alias: str | None
    run_id: str
    model_version: str
    tracking_uri: str
    reused: bool
