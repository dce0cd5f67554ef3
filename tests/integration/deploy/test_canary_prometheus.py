"""`housing canary` end to end with real processes on 127.0.0.1.

Real: three model servers (`housing serve`: stable, a good canary, a canary that fails 50% of predictions,
and a canary 250 ms slower), a real Prometheus scraping them every second, the real `housing canary` CLI
and the official kubernetes client. The only fake: the Kubernetes API (no API server can be had here), a
local stand-in that follows KServe's canary status semantics. Traffic is split between the servers by the
canaryTrafficPercent the controller sets, as KServe would.

Prometheus' static scrape labels mimic the PodMonitor's relabelling: each server's series carry
namespace/isvc/revision labels, the revision being what Knative would name it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kserve_standin import KServeStandin, KubeApiStandin
from procutil import free_port, require, running

from housing.deploy.analysis import Prometheus
from housing.server_process import feedback_secrets, start_server
from housing.variants import Variant
from loopback import LoopbackServer, QuietHandler

ROOT = Path(__file__).resolve().parents[3]
HOUSING = str(Path(sys.executable).with_name("housing"))
NAMESPACE = "housing-test"
STABLE_IMAGE = "registry.local/housing:v1"
# image -> (revision name Knative would give it, fault-injection flags of its server)
SERVERS = {
    STABLE_IMAGE: ("housing-predictor-00001", []),
    "registry.local/housing:good": ("housing-predictor-00002", []),
    "registry.local/housing:errors": ("housing-predictor-00003", ["--fault-error-rate", "0.5"]),
    "registry.local/housing:slow": ("housing-predictor-00004", ["--fault-latency-ms", "250"]),
}
ROW = [3.87, 28.0, 5.43, 1.10, 1425.0, 3.07, 35.63, -119.57]  # a typical district, FEATURES order
# Seconds instead of minutes: 1 s scrapes, 10 s rate window, 10 s analysis per step.
FAST_PLAN = (
    "--analysis-window 10 --interval 1 --rate-window 10s --ready-timeout 15 --poll 0.2 --min-requests 10"
)
FAST_PLAN_ARGS = [*FAST_PLAN.split(), "--failure-limit", "2"]

pytestmark = pytest.mark.integration


def serve_help_mentions_faults() -> bool:
    # Wide help: rich would otherwise shorten long option names to fit 80 columns.
    env = {**os.environ, "COLUMNS": "300"}
    proc = subprocess.run([HOUSING, "serve", "--help"], capture_output=True, text=True, timeout=60, env=env)
    return (
        proc.returncode == 0 and "--fault-error-rate" in proc.stdout and "--fault-latency-ms" in proc.stdout
    )


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory):
    """Model servers + Prometheus shared by this module's scenarios: ({revision: port}, prometheus URL)."""
    prometheus = require("prometheus", "run `make k8s-tools` (Debian prometheus)")
    if not serve_help_mentions_faults():
        pytest.skip(
            "SKIPPED LOUDLY: `housing serve` with --fault-error-rate/--fault-latency-ms is not available"
        )
    model_dir = request.getfixturevalue("model_dir")  # trains a small model: only once the tools exist
    tmp = tmp_path_factory.mktemp("canary-stack")
    ports = {revision: free_port() for revision, _ in SERVERS.values()}
    targets = list(ports.items())
    with _servers(tmp, model_dir, ports), PrometheusProcess(prometheus, tmp, targets) as prometheus_url:
        yield ports, prometheus_url


def _servers(tmp: Path, model_dir: Path, ports: dict[str, int]):
    with contextlib.ExitStack() as stack:  # a server that fails to start stops those already started
        for revision, faults in SERVERS.values():
            env = {  # configured the way the InferenceService's container is: HOUSING_* env vars
                "HOUSING_MODEL_DIR": str(model_dir),
                "HOUSING_MODEL_NAME": "housing",
                "HOUSING_INFERENCE_LOG_DIR": str(tmp / f"log-{revision}"),
            }
            server = start_server(tmp / f"serve-{revision}.log", *faults, port=ports[revision], env=env)
            stack.enter_context(server)
        return stack.pop_all()


class PrometheusProcess:
    def __init__(self, binary: str, tmp: Path, targets: list[tuple[str, int]]) -> None:
        """``targets``: (revision, port) of each server; pods of one revision share its name."""
        from housing.monitoring.promrules import rule_groups

        self.port = free_port()
        (tmp / "rules.yml").write_text(
            yaml.safe_dump(rule_groups(ROOT / "k8s/monitoring/prometheusrule.yaml"))
        )
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp / "rules.yml")],
            "scrape_configs": [
                {
                    "job_name": "housing-model",
                    "static_configs": [
                        {
                            "targets": [f"127.0.0.1:{port}"],
                            "labels": {
                                "namespace": NAMESPACE,
                                "isvc": "housing",
                                "component": "predictor",
                                "revision": revision,
                            },
                        }
                        for revision, port in targets
                    ],
                }
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.cmd = [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.ctx = running(self.cmd, tmp / "prometheus.log", f"http://127.0.0.1:{self.port}/-/ready")

    def __enter__(self) -> str:
        self.ctx.__enter__()
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)


class Traffic:
    """Sends predictions split like KServe would: canary share from the stand-in's status traffic."""

    def __init__(self, standin: KServeStandin, ports: dict[str, int], rate: float = 60.0) -> None:
        self.standin, self.ports, self.pause = standin, ports, 1.0 / rate
        self.sent: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.body = json.dumps({"instances": [ROW]})

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def _loop(self) -> None:
        rng = random.Random(0)
        conns: dict[str, http.client.HTTPConnection] = {}
        while not self.stop.is_set():
            canary, percent = self.standin.canary_share()
            revision = canary if canary and rng.random() * 100 < percent else self.standin.stable_revision()
            conn = conns.setdefault(
                revision, http.client.HTTPConnection("127.0.0.1", self.ports[revision], timeout=5)
            )
            try:
                conn.request(
                    "POST",
                    "/v1/models/housing:predict",
                    body=self.body,
                    headers={"Content-Type": "application/json"},
                )
                conn.getresponse().read()
                self.sent[revision] = self.sent.get(revision, 0) + 1
            except (OSError, http.client.HTTPException):
                conn.close()
                conns.pop(revision, None)
            time.sleep(self.pause)


class SlackRecorder(LoopbackServer):
    def __init__(self) -> None:
        self.messages: list[str] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                outer.messages.append(
                    json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"]
                )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        super().__init__(Handler, path="/hooks/T000/B000/x")
        self.start()


def run_canary(stack, tmp_path: Path, image: str, slack: SlackRecorder | None = None):
    ports, prometheus_url = stack
    standin = KServeStandin(
        "housing", NAMESPACE, STABLE_IMAGE, revision_names={img: rev for img, (rev, _) in SERVERS.items()}
    )
    with KubeApiStandin(standin) as api, Traffic(standin, ports) as traffic:
        time.sleep(2)  # stable traffic exists before the rollout, as in production
        env = os.environ | {"HOUSING_LOG_LEVEL": "INFO"}
        env.pop("SLACK_WEBHOOK_URL", None)
        if slack:
            env["SLACK_WEBHOOK_URL"] = slack.url
        proc = subprocess.run(
            [
                HOUSING,
                "canary",
                "--image",
                image,
                "--name",
                "housing",
                "-n",
                NAMESPACE,
                "--kubeconfig",
                str(api.kubeconfig(tmp_path)),
                "--prometheus-url",
                prometheus_url,
                "--report",
                str(tmp_path / "report.json"),
                *FAST_PLAN_ARGS,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    report = json.loads((tmp_path / "report.json").read_text()) if (tmp_path / "report.json").exists() else {}
    return proc, report, standin, traffic


def percents(standin: KServeStandin) -> list:
    return [p["spec"]["predictor"].get("canaryTrafficPercent", "keep") for p in standin.patches]


def test_good_canary_is_promoted(stack, tmp_path):
    proc, report, standin, traffic = run_canary(stack, tmp_path, "registry.local/housing:good")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["outcome"] == "promoted"
    assert percents(standin) == [10, 50, None]
    assert "canaryTrafficPercent" not in standin.predictor
    assert standin.stable_revision() == "housing-predictor-00002"
    passed = [s for s in report["steps"] if s["outcome"] == "passed"]
    assert [s["percent"] for s in passed] == [10, 50]
    for step in passed:  # judged on real data: enough canary requests, low error rate and latency
        checks = {c["name"]: c for v in step["verdicts"] if v["passed"] for c in v["checks"]}
        assert checks["error rate"]["canary"] == 0.0
        assert checks["p95 latency (s)"]["canary"] < 0.1
    assert traffic.sent.get("housing-predictor-00002", 0) > 50


@pytest.mark.parametrize(
    ("image", "failed_check"),
    [("registry.local/housing:errors", "error rate"), ("registry.local/housing:slow", "p95 latency")],
)
def test_bad_canary_is_rolled_back(stack, tmp_path, image, failed_check):
    slack = SlackRecorder()
    try:
        proc, report, standin, _traffic = run_canary(stack, tmp_path, image, slack)
    finally:
        slack.close()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert report["outcome"] == "rolled_back"
    assert failed_check in report["reason"]
    assert percents(standin) == [10, 0]
    assert standin.predictor["canaryTrafficPercent"] == 0
    assert standin.stable_revision() == "housing-predictor-00001"
    assert "ROLLED BACK" in proc.stdout
    assert failed_check in proc.stdout
    assert len(slack.messages) == 1
    assert "ROLLED BACK" in slack.messages[0]


def test_alert_rules_evaluate_cleanly_on_real_series(stack):
    """The PrometheusRule's expressions run against real server metrics without evaluation errors."""
    from housing.monitoring.promrules import rule_groups

    _, prometheus_url = stack
    deadline = time.monotonic() + 60
    while True:  # each rule has health "unknown" until its group's first evaluation
        with urllib.request.urlopen(f"{prometheus_url}/api/v1/rules", timeout=10) as resp:
            groups = json.loads(resp.read())["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if all(r["health"] != "unknown" for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(1)
    shipped = rule_groups(ROOT / "k8s/monitoring/prometheusrule.yaml")["groups"]
    assert sorted(r["name"] for r in rules) == sorted(r["alert"] for g in shipped for r in g["rules"])
    assert len(rules) >= 7  # performance, accuracy, drift, latency, errors, no traffic, the inference log
    assert all(r["health"] == "ok" for r in rules), [
        (r["name"], r["health"], r.get("lastError")) for r in rules
    ]


def test_canary_mae_is_exact_whichever_pod_scores_the_feedback(request, tmp_path):
    """KServe splits feedback calls like predictions, so any pod of either revision scores any label (they
    share the signing key, as in k8s/). A stable pod S (the champion model) and two canary pods A and B
    (another model):

    - canary predictions (from A): 10 labels off by 0.7 scored by A, 10 off by 0.1 by B, 10 off by 0.1 by S;
    - stable predictions (from S): 20 labels off by 1.0 scored by A.

    The canary's MAE is (7 + 2) / 30 = 0.3 and the stable's 1.0. Counting by the pod that scored (0.7 for the
    canary) or averaging the canary pods' rolling gauges (0.4) would be wrong.

    A pod's counters for a version it does not serve start with its first label for that version, and rate()
    cannot see what a series held at its first scrape: one warm-up label per such (pod, version), scraped
    before the counted labels, stands in for the earlier traffic a real rollout has."""
    from housing.serving.feedback_client import feedback_body, feedback_headers

    prometheus = require("prometheus", "run `make k8s-tools` (Debian prometheus)")
    stable_dir, canary_dir = request.getfixturevalue("model_dir"), request.getfixturevalue("challenger_dir")
    stable, canary = "housing-predictor-00001", "housing-predictor-00002"
    token, key = feedback_secrets(tmp_path / "secrets")
    secrets_args = ["--feedback-token-file", str(token), "--feedback-signing-key-file", str(key)]
    pods_spec = [("S", stable, stable_dir), ("A", canary, canary_dir), ("B", canary, canary_dir)]
    with contextlib.ExitStack() as stack:
        pods, targets = {}, []
        for name, revision, model in pods_spec:
            env = {"HOUSING_MODEL_DIR": str(model), "HOUSING_MODEL_NAME": "housing"}
            pod = start_server(tmp_path / f"pod-{name}.log", *secrets_args, env=env, feedback=False)
            pods[name] = stack.enter_context(pod)
            targets.append((revision, pod.port))
        prom = stack.enter_context(PrometheusProcess(prometheus, tmp_path, targets))
        feedback_count = f'model_feedback_total{{namespace="{NAMESPACE}"}}'
        wait_for(prom, f"count({feedback_count} == 0)", 3)  # every pod's zero counter, before any feedback
        headers = feedback_headers(token.read_text())

        def label(predicts: str, scores: str, error: float, sign: int = 1) -> None:
            _, answer, body = http_post(
                f"{pods[predicts].url}/v1/models/housing:predict", {"instances": [ROW]}
            )
            actual = json.loads(body)["predictions"][0] + sign * error
            status, _, _ = http_post(
                f"{pods[scores].url}/v1/feedback", feedback_body(answer, [actual]), headers
            )
            assert status == 202  # scored (Accepted: nothing to return)

        label("A", "S", 0.1)  # warm-up: S's series for the canary's version, A's for the stable's
        label("S", "A", 1.0)
        wait_for(prom, f"count({feedback_count})", 5)
        wait_for(prom, f"sum({feedback_count})", 2)
        # rate() extrapolates each series up to a scrape interval past its last sample: 8 s of samples
        # before the counted labels keep that within 1/8 of the span, much the same for every pod.
        time.sleep(8)
        counted = [("A", "A", 0.7)] * 10 + [("A", "B", 0.1)] * 10 + [("A", "S", 0.1)] * 10
        counted += [("S", "A", 1.0)] * 20  # (pod that predicts, pod that scores, absolute error)
        for i, (predicts, scores, error) in enumerate(counted):
            label(predicts, scores, error, sign=1 if i % 2 else -1)
        canary_gauges = [pods[name].gauges()[Variant.CHAMPION].mae for name in "AB"]
        assert canary_gauges == [pytest.approx(0.7, abs=1e-4), pytest.approx(0.1, abs=1e-4)]
        wait_for(prom, f"sum({feedback_count})", 2 + len(counted))  # every label scraped
        analysis = Prometheus(prom)
        canary_mae = analysis.revision_metrics(NAMESPACE, canary, "30s").mae
        stable_mae = analysis.revision_metrics(NAMESPACE, stable, "30s").mae
    # Not to 1e-6: rate() extrapolates each pod's series over its own scrape times (a few percent apart).
    assert canary_mae == pytest.approx(0.3, abs=0.025)
    assert stable_mae == pytest.approx(1.0, abs=1e-6)  # one pod scored all of its labels: no mixing


def wait_for(prometheus_url: str, expr: str, value: float, timeout: float = 30) -> None:
    prometheus, deadline = Prometheus(prometheus_url), time.monotonic() + timeout
    while (seen := prometheus.scalar(expr)) != value:
        assert time.monotonic() < deadline, f"{expr} is {seen}, not {value}, after {timeout} s"
        time.sleep(0.5)


def http_post(url: str, body: dict | bytes, headers: dict[str, str] | None = None):
    """(status, response headers, response body) of a POST to a loopback server."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers=headers or {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310
        return response.status, response.headers, response.read()
