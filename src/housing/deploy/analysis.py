"""Canary analysis: query Prometheus for the canary and the stable revision and judge the canary.

Series carry a ``revision`` label (the Knative revision of the pod) thanks to the PodMonitor's relabelling
(k8s/monitoring/podmonitor.yaml), so one selector per revision isolates canary from stable. MAE is the
exception: feedback calls are split across revisions like predictions, so it sums the feedback counters of
every pod by the version that made the prediction, for the versions the revision serves.

Judgement, per metric: the canary fails when it is worse than the absolute limit AND worse than the stable
revision by the allowed margin (a canary no worse than what already serves is not rolled back for an
incident it did not cause). Without stable data the absolute limit alone decides.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from housing.deploy.isvc import CanaryError
from housing.errors import HousingError
from housing.monitoring import httpjson
from housing.strict import OneLineErrors, Strict

REVISION_LABEL = "revision"
_LABEL_VALUE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
PROMETHEUS_DURATION = re.compile(r"^\d+(ms|s|m|h)$")


class AnalysisError(CanaryError):
    """Prometheus could not be queried (network, HTTP error, bad query)."""


class Thresholds(OneLineErrors, Strict):
    """The canary's limits (``housing canary`` flags of the same names). A ratio below 1 would roll back a
    canary exactly as good as a degraded stable revision, which the judgement promises not to do."""

    setting_name: ClassVar[str] = "canary"
    setting_error: ClassVar[type[HousingError]] = CanaryError

    max_error_rate: float = Field(0.01, ge=0, le=1)
    error_rate_margin: float = Field(0.005, ge=0, le=1)  # allowed error-rate increase over stable
    max_p95_ms: float = Field(100.0, gt=0)
    latency_ratio: float = Field(1.5, ge=1)  # allowed p95 ratio canary / stable
    max_mae: float = Field(0.40, gt=0)  # only judged when feedback exists
    mae_ratio: float = Field(1.10, ge=1)
    min_requests: float = Field(20.0, ge=0)  # canary requests per rate window needed to judge a poll

    @property
    def max_p95_latency_s(self) -> float:
        return self.max_p95_ms / 1000


@dataclass(frozen=True)
class RevisionMetrics:
    requests: float
    error_rate: float | None
    p95_latency_s: float | None
    mae: float | None


@dataclass(frozen=True)
class Check:
    name: str
    canary: float | None
    stable: float | None
    limit: float | None
    passed: bool | None  # None: not evaluated (no data)

    def describe(self) -> str:
        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4g}"

        verdict = {True: "ok", False: "FAIL", None: "skipped"}[self.passed]
        values = f"canary {fmt(self.canary)} vs stable {fmt(self.stable)}, limit {fmt(self.limit)}"
        return f"{self.name}: {values} [{verdict}]"


@dataclass(frozen=True)
class Verdict:
    passed: bool | None  # None: not enough canary traffic to judge
    reason: str
    checks: tuple[Check, ...] = field(default_factory=tuple)


def selector(namespace: str, revision: str) -> str:
    for what, value in (("namespace", namespace), ("revision", revision)):
        if not _LABEL_VALUE.match(value):
            raise CanaryError(f"{what} {value!r} is not a valid Kubernetes name")
    return f'namespace="{namespace}", {REVISION_LABEL}="{revision}"'


def queries(namespace: str, revision: str, window: str) -> dict[str, str]:
    """PromQL per metric for one revision. ``or vector(0)``: a counter that never moved has no series."""
    if not PROMETHEUS_DURATION.match(window):
        raise CanaryError(f"rate window {window!r} must be a Prometheus duration like 30s or 2m")
    sel = selector(namespace, revision)

    def feedback(counter: str) -> str:
        # The feedback counters carry the version that made the prediction, whichever pod scored the label
        # (KServe splits feedback calls like any other): sum them over the namespace's pods for the versions
        # this revision serves. No feedback in the window gives 0/0 = NaN, so MAE is not judged.
        versions = f"max by (version) (model_version_info{{{sel}}})"
        by_version = f'sum by (version) (rate({counter}{{namespace="{namespace}"}}[{window}]))'
        return f"sum({by_version} * on (version) {versions})"

    ok = f"(sum(rate(model_prediction_total{{{sel}}}[{window}])) or vector(0))"
    errors = f"(sum(rate(model_prediction_errors_total{{{sel}}}[{window}])) or vector(0))"
    return {
        "requests": f"(sum(increase(model_prediction_total{{{sel}}}[{window}])) or vector(0))"
        f" + (sum(increase(model_prediction_errors_total{{{sel}}}[{window}])) or vector(0))",
        "error_rate": f"{errors} / ({ok} + {errors})",
        "p95_latency_s": "histogram_quantile(0.95, sum by (le) "
        f"(rate(model_prediction_latency_seconds_bucket{{{sel}}}[{window}])))",
        "mae": f"{feedback('model_feedback_absolute_error_total')} / {feedback('model_feedback_total')}",
    }


class Prometheus:
    """Instant queries against the Prometheus HTTP API (GET /api/v1/query)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        try:
            self.base_url = httpjson.check_url(base_url).rstrip("/")
        except ValueError as exc:
            raise CanaryError(f"--prometheus-url: {exc}") from exc
        self.timeout = timeout

    def scalar(self, expr: str) -> float | None:
        """The single value of ``expr`` (None when empty or NaN)."""
        from urllib.parse import urlencode

        url = f"{self.base_url}/api/v1/query?{urlencode({'query': expr})}"
        try:
            resp = httpjson.request("GET", url, timeout=self.timeout)
        except OSError as exc:
            raise AnalysisError(f"Prometheus {self.base_url} unreachable: {exc}") from exc
        try:
            data: dict[str, Any] = resp.json()
        except ValueError as exc:
            raise AnalysisError(f"Prometheus HTTP {resp.status}: not JSON: {resp.text()}") from exc
        if not resp.ok or data.get("status") != "success":
            raise AnalysisError(
                f"Prometheus query failed (HTTP {resp.status}): {data.get('error', resp.text())}"
            )
        result = data["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) or math.isinf(value) else value

    def revision_metrics(self, namespace: str, revision: str, window: str) -> RevisionMetrics:
        values = {name: self.scalar(expr) for name, expr in queries(namespace, revision, window).items()}
        return RevisionMetrics(
            requests=values["requests"] or 0.0,
            error_rate=values["error_rate"],
            p95_latency_s=values["p95_latency_s"],
            mae=values["mae"],
        )


def _compare(
    name: str, canary: float | None, stable: float | None, absolute: float, relative_limit: float | None
) -> Check:
    if canary is None:
        return Check(name, None, stable, None, None)
    limit = absolute if relative_limit is None else max(absolute, relative_limit)
    return Check(name, canary, stable, limit, canary <= limit)


def judge(canary: RevisionMetrics, stable: RevisionMetrics | None, t: Thresholds) -> Verdict:
    """Pass/fail/no-data verdict of one analysis poll."""
    if canary.requests < t.min_requests:
        return Verdict(
            None, f"only {canary.requests:.0f} canary requests in the window (need {t.min_requests:.0f})"
        )
    stable = stable if stable is not None and stable.requests >= t.min_requests else None

    def stable_value(attr: str) -> float | None:
        return None if stable is None else getattr(stable, attr)

    s_err, s_p95, s_mae = stable_value("error_rate"), stable_value("p95_latency_s"), stable_value("mae")
    checks = (
        _compare(
            "error rate",
            canary.error_rate,
            s_err,
            t.max_error_rate,
            None if s_err is None else s_err + t.error_rate_margin,
        ),
        _compare(
            "p95 latency (s)",
            canary.p95_latency_s,
            s_p95,
            t.max_p95_latency_s,
            None if s_p95 is None else s_p95 * t.latency_ratio,
        ),
        _compare("MAE", canary.mae, s_mae, t.max_mae, None if s_mae is None else s_mae * t.mae_ratio),
    )
    failed = [c.name for c in checks if c.passed is False]
    if failed:
        return Verdict(False, "canary worse than limits on " + ", ".join(failed), checks)
    return Verdict(True, "canary within limits", checks)
