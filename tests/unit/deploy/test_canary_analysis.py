"""PromQL built for canary analysis, the Prometheus HTTP client, and the pass/fail rules."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from housing.deploy.analysis import (
    AnalysisError,
    Prometheus,
    RevisionMetrics,
    Thresholds,
    judge,
    queries,
)
from housing.deploy.isvc import CanaryError
from loopback import LoopbackServer, QuietHandler


def test_queries_select_one_revision_and_handle_missing_counters():
    q = queries("housing-production", "housing-predictor-00002", "2m")
    sel = 'namespace="housing-production", revision="housing-predictor-00002"'
    assert set(q) == {"requests", "error_rate", "p95_latency_s", "mae"}
    assert all(sel in expr for expr in q.values())
    assert "[2m]" in q["error_rate"]
    assert "or vector(0)" in q["error_rate"]
    assert q["p95_latency_s"].startswith("histogram_quantile(0.95, sum by (le)")


@pytest.mark.parametrize(
    ("namespace", "revision", "window"),
    [
        ("ns", 'x"} or vector(1) #', "1m"),
        ("Bad_NS", "rev", "1m"),
        ("ns", "rev", "1m; drop"),
        ("ns", "rev", "5"),
    ],
)
def test_queries_refuse_injection_and_bad_durations(namespace, revision, window):
    with pytest.raises(CanaryError):
        queries(namespace, revision, window)


class FakePrometheus(LoopbackServer):
    """Answers /api/v1/query from a dict {substring of the query: response JSON or (status, body)}."""

    def __init__(self, answers):
        self.answers, self.queries = answers, []
        outer = self

        class Handler(QuietHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)["query"][0]
                outer.queries.append(query)
                status, body = 200, {"status": "success", "data": {"resultType": "vector", "result": []}}
                for key, answer in outer.answers.items():
                    if key in query:
                        status, body = answer if isinstance(answer, tuple) else (200, answer)
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)
        self.start()


def vector(value: str) -> dict:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, value]}]},
    }


@pytest.fixture
def fake_prometheus():
    servers = []

    def make(answers):
        servers.append(FakePrometheus(answers))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_revision_metrics_reads_each_query(fake_prometheus):
    prom = fake_prometheus(
        {
            "increase(model_prediction_total": vector("120"),
            "/ (": vector("0.025"),
            "histogram_quantile": vector("0.0123"),
            "model_feedback_absolute_error_total": vector("NaN"),  # 0/0: no feedback in the window
        }
    )
    metrics = Prometheus(prom.url).revision_metrics("ns", "housing-predictor-00002", "1m")
    assert metrics == RevisionMetrics(requests=120.0, error_rate=0.025, p95_latency_s=0.0123, mae=None)
    assert len(prom.queries) == 4


def test_prometheus_errors_become_analysis_errors(fake_prometheus):
    bad = fake_prometheus({"": (400, {"status": "error", "errorType": "bad_data", "error": "parse error"})})
    with pytest.raises(AnalysisError, match="parse error"):
        Prometheus(bad.url).scalar("up")
    html = fake_prometheus({"": (502, "<html>bad gateway</html>")})
    with pytest.raises(AnalysisError, match="not JSON"):
        Prometheus(html.url).scalar("up")
    with pytest.raises(AnalysisError, match="unreachable"):
        Prometheus("http://127.0.0.1:9", timeout=2).scalar("up")
    with pytest.raises(CanaryError, match="prometheus-url"):
        Prometheus("file:///etc/passwd")


T = Thresholds()
STABLE = RevisionMetrics(1000, 0.001, 0.010, 0.30)


def test_judge_passes_a_healthy_canary_and_skips_mae_without_feedback():
    verdict = judge(RevisionMetrics(100, 0.002, 0.012, None), STABLE, T)
    assert verdict.passed is True
    assert [c.passed for c in verdict.checks] == [True, True, None]


def test_judge_needs_enough_canary_requests():
    verdict = judge(RevisionMetrics(5, 1.0, 1.0, 1.0), STABLE, T)
    assert verdict.passed is None
    assert "only 5 canary requests" in verdict.reason


@pytest.mark.parametrize(
    ("canary", "failed"),
    [
        (RevisionMetrics(100, 0.02, 0.010, 0.30), "error rate"),
        (RevisionMetrics(100, 0.0, 0.150, 0.30), "p95 latency (s)"),
        (RevisionMetrics(100, 0.0, 0.010, 0.45), "MAE"),
    ],
)
def test_judge_fails_each_metric(canary, failed):
    verdict = judge(canary, STABLE, T)
    assert verdict.passed is False
    assert [c.name for c in verdict.checks if c.passed is False] == [failed]


def test_judge_relative_limits_follow_a_degraded_stable():
    slow_stable = RevisionMetrics(1000, 0.0, 0.200, None)
    assert judge(RevisionMetrics(100, 0.0, 0.250, None), slow_stable, T).passed is True  # < 1.5 x stable
    assert judge(RevisionMetrics(100, 0.0, 0.350, None), slow_stable, T).passed is False
    # a stable revision without enough traffic is ignored: absolute limits alone decide
    assert judge(RevisionMetrics(100, 0.0, 0.150, None), RevisionMetrics(3, 0, 0.2, None), T).passed is False
    assert judge(RevisionMetrics(100, 0.0, 0.050, None), None, T).passed is True
