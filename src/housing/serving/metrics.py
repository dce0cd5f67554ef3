"""Prometheus metrics of the model server, bound once per model variant so requests do no label lookups.

Labels are bounded: ``model`` (the served name), ``variant`` (champion|challenger), ``reason`` (a fixed
enum), and ``version`` on ``model_version_info`` and the feedback counters (the version that made the
prediction: the model versions deployed at once, a handful).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from housing.inference_log import DropReason, InferenceLogWriter
from housing.serving.schema import ERROR_REASONS

# Sub-millisecond to 1 s: the model answers in ~30 µs, the whole request in well under 1 ms.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# Predicted median house value in $100k (the census caps the target at 5.0).
VALUE_BUCKETS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
LABELS = ("model", "variant")
ACCURACY_LABELS = ("model", "variant", "version")
# Bounded label values of model_feedback_rejected_total{reason}, one per refusal status.
FEEDBACK_REJECTIONS = {401: "unauthorized", 400: "invalid", 404: "unknown_request", 413: "too_large"}


class RequestStats:
    """What one (model, variant) has answered: request and row counts, latency and value histograms.

    Plain Python numbers updated on the event loop thread, the only one that reads them (``/metrics`` is
    served there too), so a request costs a few additions instead of prometheus_client's locked calls per
    counter, per histogram bucket and per predicted value. Bucket ``i`` counts values in
    ``(bounds[i - 1], bounds[i]]`` (Prometheus' ``le``); the last one is ``+Inf`` (NaN lands there too).
    """

    __slots__ = ("latency_counts", "latency_sum", "requests", "rows", "value_counts", "value_sum")

    def __init__(self) -> None:
        self.requests = 0
        self.rows = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.value_counts = [0] * (len(VALUE_BUCKETS) + 1)
        self.value_sum = 0.0

    def observe(self, seconds: float, predictions: np.ndarray) -> None:
        self.requests += 1
        self.latency_counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        n = len(predictions)
        self.rows += n
        if n == 1:  # the common case, without numpy's per-call overhead
            value = float(predictions[0])
            self.value_counts[bisect_left(VALUE_BUCKETS, value) if value == value else -1] += 1
            self.value_sum += value
        else:
            # side="left": a value equal to a bound falls in that bound's bucket, as with bisect_left.
            index = np.searchsorted(VALUE_BUCKETS, predictions, side="left")
            added = np.bincount(index, minlength=len(VALUE_BUCKETS) + 1).tolist()
            self.value_counts = [a + b for a, b in zip(self.value_counts, added, strict=True)]
            self.value_sum += float(predictions.sum(dtype=np.float64))


def _buckets(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, int]]:
    cumulative, total = [], 0
    for bound, count in zip((*map(floatToGoString, bounds), "+Inf"), counts, strict=True):
        total += count
        cumulative.append((bound, total))
    return cumulative


class RequestStatsCollector(Collector):
    """Exposes every :class:`RequestStats` as ``model_prediction_total``, ``..._instances_total``,
    ``model_prediction_latency_seconds`` and ``model_prediction_value``."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], RequestStats] = {}

    def child(self, model: str, variant: str) -> RequestStats:
        return self._series.setdefault((model, variant), RequestStats())

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "model_prediction", "Successful predict/infer requests.", labels=LABELS
        )
        rows = CounterMetricFamily("model_prediction_instances", "Instances (rows) predicted.", labels=LABELS)
        latency = HistogramMetricFamily(
            "model_prediction_latency_seconds",
            "Time from request received to response ready (predict/infer).",
            labels=LABELS,
        )
        values = HistogramMetricFamily(
            "model_prediction_value", "Predicted values (median house value, $100k).", labels=LABELS
        )
        for labels, stats in self._series.items():
            requests.add_metric(labels, stats.requests)
            rows.add_metric(labels, stats.rows)
            latency.add_metric(labels, _buckets(LATENCY_BUCKETS, stats.latency_counts), stats.latency_sum)
            values.add_metric(labels, _buckets(VALUE_BUCKETS, stats.value_counts), stats.value_sum)
        yield from (requests, rows, latency, values)


class ServingMetrics:
    """All metric families of one server, in their own registry (tests run several servers per process)."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        disable_created_metrics()  # no *_created series: half the exposition, no use here
        self.registry = CollectorRegistry(auto_describe=True)
        labels = list(LABELS)
        reg = self.registry
        self.requests = RequestStatsCollector()
        reg.register(self.requests)
        self.errors = Counter(
            "model_prediction_errors",
            f"Failed predict/infer requests by reason ({', '.join(ERROR_REASONS)}).",
            [*labels, "reason"],
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
        # Live accuracy as counters: they sum across replicas (any replica may score any feedback, see
        # feedback_token.py), so PromQL gets the exact MAE and PPE of every version from rate() ratios.
        accuracy = list(ACCURACY_LABELS)
        self.feedback = Counter(
            "model_feedback",
            "Ground-truth values scored (POST /v1/feedback), by the variant and version that predicted them.",
            accuracy,
            registry=reg,
        )
        self.feedback_absolute_error = Counter(
            "model_feedback_absolute_error",
            "Sum of |prediction - actual| over scored feedback (MAE: its rate / model_feedback's rate).",
            accuracy,
            registry=reg,
        )
        self.feedback_within_tolerance = Counter(
            "model_feedback_within_tolerance",
            "Scored feedback within ±tolerance of the actual value (--ppe-tolerance; the accuracy alert's).",
            accuracy,
            registry=reg,
        )
        self.feedback_within_10pct = Counter(
            "model_feedback_within_10pct",
            "Scored feedback within ±10% of the actual value (PPE10).",
            accuracy,
            registry=reg,
        )
        self._accuracy: dict[tuple[str, str, str], AccuracyCounters] = {}
        self.feedback_rejected = Counter(
            "model_feedback_rejected",
            f"Refused POST /v1/feedback requests by reason ({', '.join(FEEDBACK_REJECTIONS.values())}).",
            ["reason"],
            registry=reg,
        )
        self.feedback_rejections = {
            status: self.feedback_rejected.labels(reason) for status, reason in FEEDBACK_REJECTIONS.items()
        }
        # Counted by the request path as a plain int (see RequestStats), read when scraped.
        self.in_flight_requests = 0
        in_flight = Gauge(
            "model_prediction_in_flight", "Predict/infer requests being processed now.", registry=reg
        )
        in_flight.set_function(lambda: self.in_flight_requests)
        if process_metrics:  # process_resident_memory_bytes, CPU seconds, open fds
            ProcessCollector(registry=reg)

    def bind(self, model: str, variant: str, version: str) -> ModelMetrics:
        return ModelMetrics(self, model, variant, version)

    def accuracy(self, model: str, variant: str, version: str) -> AccuracyCounters:
        """The accuracy counters of one (model, variant, version), created on first use: a replica may score
        feedback for a version it does not serve (a canary's, during a rollout)."""
        key = (model, variant, version)
        counters = self._accuracy.get(key)
        if counters is None:
            counters = self._accuracy[key] = AccuracyCounters(self, key)
        return counters

    def watch_inference_log(self, writer: InferenceLogWriter) -> None:
        self.registry.register(InferenceLogCollector(writer))


class ModelMetrics:
    """The label-bound children of one (model, variant): what the request path touches."""

    def __init__(self, metrics: ServingMetrics, model: str, variant: str, version: str) -> None:
        self.stats = metrics.requests.child(model, variant)
        self.errors = {reason: metrics.errors.labels(model, variant, reason) for reason in ERROR_REASONS}
        self.mae = metrics.mae.labels(model, variant)
        self.r2 = metrics.r2.labels(model, variant)
        self.ppe10 = metrics.ppe10.labels(model, variant)
        self.ppe = metrics.ppe.labels(model, variant)
        self.accuracy = metrics.accuracy(model, variant, version)  # exported at 0 from the start
        # No feedback yet: the scores are unknown, not 0 (an R² of 0 would fire alerts).
        for gauge in (self.mae, self.r2, self.ppe10, self.ppe):
            gauge.set(float("nan"))
        metrics.version_info.labels(model, variant, version).set(1)

    def observe_success(self, seconds: float, predictions: np.ndarray) -> None:
        self.stats.observe(seconds, predictions)

    def observe_error(self, reason: str) -> None:
        self.errors[reason].inc()


class AccuracyCounters:
    """The accuracy counters of one (model, variant, version)."""

    def __init__(self, metrics: ServingMetrics, labels: tuple[str, str, str]) -> None:
        self.count = metrics.feedback.labels(*labels)
        self.absolute_error = metrics.feedback_absolute_error.labels(*labels)
        self.within_tolerance = metrics.feedback_within_tolerance.labels(*labels)
        self.within_10pct = metrics.feedback_within_10pct.labels(*labels)

    def observe(self, predictions: list[float], actuals: list[float], tolerance: float) -> None:
        predicted = np.asarray(predictions, dtype=np.float64)
        actual = np.asarray(actuals, dtype=np.float64)
        error, scale = np.abs(predicted - actual), np.abs(actual)
        self.count.inc(len(actual))
        self.absolute_error.inc(float(error.sum()))
        self.within_tolerance.inc(int((error <= tolerance * scale).sum()))
        self.within_10pct.inc(int((error <= 0.10 * scale).sum()))


class InferenceLogCollector(Collector):
    """The inference log writer's books, read at scrape time (the writer thread touches no metric)."""

    def __init__(self, writer: InferenceLogWriter) -> None:
        self.writer = writer

    def collect(self) -> Iterator[Metric]:
        books = self.writer.accounting()
        yield CounterMetricFamily(
            "model_inference_log_rows",
            "Rows offered to the inference log (prediction, feedback and error records): written + dropped "
            "+ pending.",
            value=books.rows,
        )
        yield CounterMetricFamily(
            "model_inference_log_written_rows", "Inference log rows written whole.", value=books.written
        )
        dropped = CounterMetricFamily(
            "model_inference_log_dropped",
            f"Inference log rows never written, by reason ({', '.join(DropReason)}).",
            labels=["reason"],
        )
        for reason, rows in books.dropped.items():
            dropped.add_metric([reason], rows)
        yield dropped
        yield GaugeMetricFamily(
            "model_inference_log_pending_rows",
            "Inference log rows queued in memory, not yet written (the backlog).",
            value=books.pending,
        )
        yield GaugeMetricFamily(
            "model_inference_log_healthy",
            "1 while the inference log writer runs and its last write succeeded; 0 while it retries.",
            value=1 if books.healthy else 0,
        )
        errors = CounterMetricFamily(
            "model_inference_log_write_errors",
            "Failed inference log write attempts (open, write, fsync, close), by errno name.",
            labels=["error"],
        )
        for name, count in sorted(books.write_errors.items()):
            errors.add_metric([name], count)
        yield errors
