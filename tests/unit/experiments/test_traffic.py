"""Traffic simulator against a tiny local stub of the model server (the real server:
tests/integration/experiments/test_ab_server.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from housing.cli import app
from housing.config import DataParams
from housing.errors import ConfigError
from housing.experiments.traffic import (
    ROUTING_HEADER,
    TrafficConfig,
    TrafficError,
    format_summary,
    load_houses,
    run_traffic,
)
from loopback import LoopbackServer, QuietHandler
from settings_support import assert_options_follow, command_options

FEATURES = list(DataParams().features)
TOKEN = "stub-feedback-token-0123456789"


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "feedback-token"
    path.write_text(TOKEN + "\n")
    return path


class StubServer(LoopbackServer):
    """Answers V1 predict (variant by hash of the routing key) and /v1/feedback; records what it saw."""

    def __init__(self, *, delay: float = 0.0, fail_every: int = 0) -> None:
        self.delay, self.fail_every = delay, fail_every
        self.predictions: list[dict] = []  # {"request_id", "routing_key", "t", "features"}
        self.feedback: list[dict] = []  # {"request_id", "actual", "t"}
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, body: dict, headers: dict | None = None) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                if self.path == "/v1/models":
                    return self._reply(200, {"models": ["housing"]})
                return self._reply(404, {"error": "no route"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/v1/models/housing:predict":
                    return stub.predict(self, body)
                if self.path == "/v1/feedback":
                    return stub.take_feedback(self, body)
                return self._reply(404, {"error": "no route"})

        super().__init__(Handler)

    @staticmethod
    def variant_for(key: str) -> str:
        return "challenger" if hashlib.sha256(key.encode()).digest()[0] % 2 else "champion"

    def predict(self, handler, body) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            number = len(self.predictions)
            request_id = uuid.uuid4().hex
            key = handler.headers.get(ROUTING_HEADER)
            self.predictions.append(
                {
                    "request_id": request_id,
                    "routing_key": key,
                    "t": time.monotonic(),
                    "features": body["instances"][0],
                }
            )
        try:
            if self.delay:
                time.sleep(self.delay)
            if self.fail_every and number % self.fail_every == 0:
                return handler._reply(500, {"error": "injected"}, {"X-Request-Id": request_id})
            variant = self.variant_for(key or "")
            return handler._reply(
                200,
                {"predictions": [1.0]},
                {"X-Request-Id": request_id, "X-Model-Variant": variant, "X-Model-Version": f"sha-{variant}"},
            )
        finally:
            with self.lock:
                self.in_flight -= 1

    def take_feedback(self, handler, body) -> None:
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            return handler._reply(401, {"error": "unauthorized"})
        with self.lock:
            known = {p["request_id"]: p for p in self.predictions}
            if body.get("request_id") not in known:
                return handler._reply(404, {"error": "unknown request id"})
            self.feedback.append({**body, "t": time.monotonic()})
        return handler._reply(202, {"accepted": True})


@pytest.fixture
def houses_csv(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "MedInc": rng.uniform(1, 10, 60),
            "HouseAge": rng.integers(1, 52, 60).astype(float),
            "AveRooms": rng.uniform(3, 8, 60),
            "AveBedrms": rng.uniform(0.8, 1.5, 60),
            "Population": rng.integers(100, 3000, 60).astype(float),
            "AveOccup": rng.uniform(1.5, 4, 60),
            "Latitude": rng.uniform(33, 41, 60),
            "Longitude": rng.uniform(-123, -115, 60),
            "MedHouseVal": rng.uniform(0.5, 5, 60),
        }
    )
    path = tmp_path / "held_out.csv"
    frame.to_csv(path, index=False)
    return path


def test_load_houses_keeps_ids_through_a_scenario(houses_csv):
    plain = load_houses(houses_csv, DataParams(), seed=3)
    assert len(plain) == 60
    assert len({h.house_id for h in plain}) == 60
    assert [h.house_id for h in plain] != sorted(h.house_id for h in plain)  # shuffled
    frame = pd.read_csv(houses_csv)
    first = plain[0]
    row = frame.iloc[int(first.house_id.rsplit("-", 1)[1])]
    assert first.features == pytest.approx(row[FEATURES].tolist())
    assert first.actual == pytest.approx(row["MedHouseVal"])
    shifted = {h.house_id: h for h in load_houses(houses_csv, DataParams(), scenario="income_shift", seed=3)}
    # income_shift multiplies MedInc by 1.3 (clipped to the file's range).
    for house in plain:
        expected = min(house.features[0] * 1.3, frame["MedInc"].max())
        assert shifted[house.house_id].features[0] == pytest.approx(expected, rel=1e-6)
    assert len(load_houses(houses_csv, DataParams(), needed=10, seed=3)) == 10
    with pytest.raises(ConfigError, match="scenario 'nope' is unknown"):
        load_houses(houses_csv, DataParams(), scenario="nope")


def test_traffic_routes_by_house_and_posts_delayed_feedback(houses_csv, token_file):
    houses = load_houses(houses_csv, DataParams(), seed=1)
    config = TrafficConfig(
        rate=200.0,
        requests=90,
        duration=30.0,
        concurrency=4,
        feedback_share=0.5,
        feedback_delay=0.1,
        feedback_token_file=token_file,
        seed=5,
    )
    with StubServer() as stub:
        started = time.monotonic()
        summary = asyncio.run(run_traffic(config.model_copy(update={"url": stub.url}), houses))
        wall = time.monotonic() - started
    assert summary.model == "housing"
    assert summary.requests_sent == summary.ok == len(stub.predictions) == 90
    assert summary.stopped_by == "requests"
    # Rate bound: request i starts no earlier than i / rate.
    assert wall >= 89 / 200.0
    assert summary.achieved_rate <= 200.0 * 1.05
    # Every request carries its house id; the same house always lands on the same variant.
    by_id = {h.house_id: h for h in houses}
    assert all(p["routing_key"] in by_id for p in stub.predictions)
    assert all(p["features"] == by_id[p["routing_key"]].features for p in stub.predictions)
    assert summary.houses_repeated is True  # 90 requests over 60 houses
    assert sum(summary.variants.values()) == 90
    assert set(summary.variants) == {"champion", "challenger"}
    # Feedback: the seeded share, the house's own true value, after the delay.
    expected = int((np.random.default_rng(5).random(90) < 0.5).sum())
    assert summary.feedback.scheduled == summary.feedback.accepted == len(stub.feedback) == expected
    predictions = {p["request_id"]: p for p in stub.predictions}
    for fed in stub.feedback:
        prediction = predictions[fed["request_id"]]
        assert fed["actual"] == pytest.approx(by_id[prediction["routing_key"]].actual)
        assert fed["t"] - prediction["t"] >= 0.1
    assert "feedback: " in format_summary(summary)
    assert "houses repeat" in format_summary(summary)


def test_traffic_is_bounded_by_duration_and_concurrency(houses_csv):
    houses = load_houses(houses_csv, DataParams(), seed=1)
    with StubServer(delay=0.05) as stub:
        config = TrafficConfig(
            url=stub.url, rate=1000.0, requests=10_000, duration=0.5, concurrency=3, feedback_share=0.0
        )
        summary = asyncio.run(run_traffic(config, houses))
    assert summary.stopped_by == "duration"
    # 3 in flight x 50 ms each: about 60 requests in 0.5 s, far below 10 000.
    assert 10 <= summary.requests_sent <= 3 * 0.5 / 0.05 + 3
    assert stub.max_in_flight <= 3
    assert summary.traffic_seconds < 0.5 + 0.2


def test_failures_and_rejected_feedback_are_counted(houses_csv, token_file, tmp_path):
    houses = load_houses(houses_csv, DataParams(), seed=1)
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-servers-token-0123456789")
    with StubServer(fail_every=4) as stub:
        config = TrafficConfig(
            url=stub.url,
            model="housing",
            rate=500.0,
            requests=40,
            feedback_share=1.0,
            feedback_delay=0.0,
            feedback_token_file=token_file,
        )
        summary = asyncio.run(run_traffic(config, houses))
        refused = asyncio.run(run_traffic(config.model_copy(update={"feedback_token_file": wrong}), houses))
    assert summary.failed == {"500": 10}
    assert summary.ok == 30
    assert summary.feedback.accepted == 30  # only successful predictions get ground truth
    assert refused.feedback.rejected == {"401": 30}
    assert TOKEN not in summary.model_dump_json()  # the summary names the token's file, never the token


def test_unreachable_server_and_bad_flags():
    houses = [type("H", (), {"house_id": "h", "features": [1.0] * 8, "actual": 1.0})()]
    with pytest.raises(TrafficError, match="cannot list models"):
        asyncio.run(
            run_traffic(TrafficConfig(url="http://127.0.0.1:9", timeout=1.0, feedback_share=0.0), houses)
        )
    with pytest.raises(ConfigError, match="--feedback-token-file"):
        asyncio.run(run_traffic(TrafficConfig(url="http://127.0.0.1:9", feedback_share=0.5), houses))
    with pytest.raises(ConfigError, match="--feedback-share"):
        TrafficConfig(feedback_share=1.5)
    with pytest.raises(ConfigError, match="--rate"):
        TrafficConfig(rate=0)


def test_options_take_defaults_limits_and_help_from_the_settings():
    assert_options_follow(TrafficConfig, command_options("simulate", "traffic"))


def test_a_negative_seed_or_a_non_http_url_is_one_line_not_a_traceback(houses_csv):
    """Bug fixed: --seed -1 passed the checks and failed inside numpy's generator with a traceback."""
    result = CliRunner().invoke(
        app, ["simulate", "traffic", "--seed", "-1", "--url", "ftp://host", "--csv", str(houses_csv)]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == (
        "simulate traffic setting url='ftp://host': must be an absolute http:// or https:// URL (--url); "
        "simulate traffic setting seed=-1 is out of range: must be >= 0 (--seed)"
    )
    assert TrafficConfig(url="http://127.0.0.1:8080/").url == "http://127.0.0.1:8080"
