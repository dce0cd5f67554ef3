"""A served model: verified ONNX session + metadata + input schema + bound metrics + rolling scores.

A :class:`ModelHandle` is the unit a request is routed to; champion/challenger routing picks one per request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from housing.artifact import ModelMetadata, load_verified, onnx_session
from housing.errors import DataError
from housing.serving.batching import Batcher
from housing.serving.feedback import RollingScores
from housing.serving.metrics import ModelMetrics, ServingMetrics
from housing.serving.schema import FeatureSchema
from housing.variants import Variant

log = logging.getLogger(__name__)

PLATFORM = "onnx_onnxv1"  # the Open Inference Protocol's platform name for ONNX Runtime models


@dataclass
class ModelHandle:
    name: str  # the name served in URLs (/v1/models/<name>, /v2/models/<name>)
    variant: Variant
    metadata: ModelMetadata
    session: Any  # onnxruntime.InferenceSession
    schema: FeatureSchema
    metrics: ModelMetrics
    scores: RollingScores
    model_dir: Path
    ready: bool = True
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Response headers shared by every prediction of this handle, encoded once.
        self.headers = [
            (b"x-model-version", self.metadata.model_version.encode()),
            (b"x-model-variant", self.variant.encode()),
        ]
        self._input_name = self.metadata.input_name
        self._outputs = [self.metadata.output_name]
        # Concurrent requests share model calls; it calls self.predict as it is then (tests replace it).
        self.batcher = Batcher(lambda: self.predict, max_rows=self.schema.max_batch)

    @property
    def version(self) -> str:
        return self.metadata.model_version

    def predict(self, features: np.ndarray) -> np.ndarray:
        """float features (n, n_features) -> float32 predictions (n,)."""
        X = np.ascontiguousarray(features, dtype=np.float32)
        (output,) = self.session.run(self._outputs, {self._input_name: X})
        return output.reshape(-1)

    def v2_metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [{"name": self._input_name, "datatype": "FP32", "shape": [-1, self.schema.width]}],
            "outputs": [{"name": self.metadata.output_name, "datatype": "FP32", "shape": [-1, 1]}],
        }


def load_handle(
    model_dir: Path,
    *,
    metrics: ServingMetrics,
    variant: Variant = Variant.CHAMPION,
    name: str | None = None,
    tolerance: float = 0.0,
    max_batch: int = 1000,
    feedback_window: int = 1000,
    ppe_tolerance: float = 0.25,
) -> ModelHandle:
    """Load and verify a model directory (sha256 checked before onnxruntime sees a byte)."""
    metadata, payload = load_verified(model_dir)
    session = onnx_session(payload, threads=1)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    n_features = len(metadata.features)
    if [i.name for i in inputs] != [metadata.input_name] or inputs[0].shape[-1] != n_features:
        raise DataError(
            f"{model_dir}: ONNX input {[(i.name, i.shape) for i in inputs]} does not match the metadata "
            f"({metadata.input_name!r}, {n_features} features)"
        )
    if metadata.output_name not in [o.name for o in outputs]:
        raise DataError(f"{model_dir}: ONNX model has no output {metadata.output_name!r}")
    served_name = name or metadata.model_name
    handle = ModelHandle(
        name=served_name,
        variant=variant,
        metadata=metadata,
        session=session,
        schema=FeatureSchema(metadata.features, tolerance=tolerance, max_batch=max_batch),
        metrics=metrics.bind(served_name, variant, metadata.model_version),
        scores=RollingScores(feedback_window, ppe_tolerance),
        model_dir=model_dir,
    )
    # Warm up: the first run allocates; keep that off the first real request.
    handle.predict(np.array([[(f.min + f.max) / 2 for f in metadata.features]]))
    log.info(
        "model loaded",
        extra={
            "model": served_name,
            "variant": variant.value,
            "model_version": metadata.model_version,
            "model_dir": str(model_dir),
            "onnx_sha256": metadata.onnx_sha256,
        },
    )
    return handle
