"""Prometheus metrics of the model server, bound once per model variant so requests do no label lookups.

Labels are bounded: ``model`` (the served name), ``variant`` (champion|challenger), ``reason`` (a fixed
enum), and ``version`` only on ``model_version_info``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from housing.serving.schema import ERROR_REASONS

# Sub-millisecond to 1 s: the model answers in ~50 µs, the whole request in well under 1 ms.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# Predicted median house value in $100k (the census caps the target at 5.0).
VALUE_BUCKETS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
VARIANTS = ("champion", "challenger")


class ValueHistogram(Collector):
    """``model_prediction_value``: a histogram fed a whole batch at once with numpy.

    prometheus_client's Histogram costs a locked call per observation (100 per batch of 100); this keeps
    per-bucket counts in an array. Updated and collected on the event loop thread only.
    """

    name = "model_prediction_value"

    def __init__(self, bounds: tuple[float, ...] = VALUE_BUCKETS) -> None:
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self._series: dict[tuple[str, str], list] = {}

    def child(self, model: str, variant: str) -> list:
        """A [counts, sum] cell for one label set (counts per bucket, the last one is +Inf)."""
        return self._series.setdefault((model, variant), [np.zeros(len(self.bounds) + 1, np.int64), 0.0])

    def observe(self, cell: list, values: np.ndarray) -> None:
        # side="left": a value equal to a bound falls in that bound's bucket (Prometheus' le semantics).
        index = np.searchsorted(self.bounds, values, side="left")
        cell[0] += np.bincount(index, minlength=len(self.bounds) + 1)
        cell[1] += float(values.sum())

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            self.name, "Predicted values (median house value, $100k).", labels=["model", "variant"]
        )
        for (model, variant), (counts, total) in self._series.items():
            cumulative = np.cumsum(counts).tolist()
            bounds = self.bounds.tolist()
            buckets = [(floatToGoString(b), c) for b, c in zip(bounds, cumulative, strict=False)]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric([model, variant], buckets, total)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, "Predicted values (median house value, $100k).")


class ServingMetrics:
    """All metric families of one server, in their own registry (tests run several servers per process)."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        disable_created_metrics()  # no *_created series: half the exposition, no use here
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "variant"]
        reg = self.registry
        self.predictions = Counter(
            "model_prediction", "Successful predict/infer requests.", labels, registry=reg
        )
        self.instances = Counter(
            "model_prediction_instances", "Instances (rows) predicted.", labels, registry=reg
        )
        self.errors = Counter(
            "model_prediction_errors",
            f"Failed predict/infer requests by reason ({', '.join(ERROR_REASONS)}).",
            [*labels, "reason"],
            registry=reg,
        )
        self.latency = Histogram(
            "model_prediction_latency_seconds",
            "Time from request received to response ready (predict/infer).",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.version_info = Gauge(
            "model_version_info",
            "The model version served by each variant (always 1).",
            [*labels, "version"],
            registry=reg,
        )
        self.mae = Gauge("model_mae_score", "Rolling MAE over fed-back predictions.", labels, registry=reg)
        self.r2 = Gauge("model_r2_score", "Rolling R² over fed-back predictions.", labels, registry=reg)
        self.ppe10 = Gauge(
            "model_ppe10_score",
            "Share of fed-back predictions within ±10% of the actual value (rolling).",
            labels,
            registry=reg,
        )
        self.ppe = Gauge(
            "model_ppe_score",
            "Share of fed-back predictions within ±tolerance of the actual value (rolling; --ppe-tolerance).",
            labels,
            registry=reg,
        )
        self.feedback = Counter(
            "model_feedback", "Ground-truth values received (POST /v1/feedback).", labels, registry=reg
        )
        self.in_flight = Gauge(
            "model_prediction_in_flight", "Predict/infer requests being processed now.", registry=reg
        )
        self.log_dropped = Counter(
            "model_inference_log_dropped",
            "Inference log rows dropped (queue full or write error).",
            registry=reg,
        )
        self.log_pending = Gauge(
            "model_inference_log_pending_rows", "Inference log rows queued, not yet written.", registry=reg
        )
        self.values = ValueHistogram()
        reg.register(self.values)
        if process_metrics:  # process_resident_memory_bytes, CPU seconds, open fds
            ProcessCollector(registry=reg)

    def bind(self, model: str, variant: str, version: str) -> ModelMetrics:
        return ModelMetrics(self, model, variant, version)


class ModelMetrics:
    """The label-bound children of one (model, variant): what the request path touches."""

    def __init__(self, metrics: ServingMetrics, model: str, variant: str, version: str) -> None:
        self.predictions = metrics.predictions.labels(model, variant)
        self.instances = metrics.instances.labels(model, variant)
        self.errors = {reason: metrics.errors.labels(model, variant, reason) for reason in ERROR_REASONS}
        self.latency = metrics.latency.labels(model, variant)
        self.mae = metrics.mae.labels(model, variant)
        self.r2 = metrics.r2.labels(model, variant)
        self.ppe10 = metrics.ppe10.labels(model, variant)
        self.ppe = metrics.ppe.labels(model, variant)
        self.feedback = metrics.feedback.labels(model, variant)
        self._values = metrics.values
        self._value_cell = metrics.values.child(model, variant)
        # No feedback yet: the scores are unknown, not 0 (an R² of 0 would fire alerts).
        for gauge in (self.mae, self.r2, self.ppe10, self.ppe):
            gauge.set(float("nan"))
        metrics.version_info.labels(model, variant, version).set(1)

    def observe_success(self, seconds: float, predictions: np.ndarray) -> None:
        self.predictions.inc()
        self.instances.inc(len(predictions))
        self.latency.observe(seconds)
        self._values.observe(self._value_cell, predictions)

    def observe_error(self, reason: str) -> None:
        self.errors[reason].inc()
