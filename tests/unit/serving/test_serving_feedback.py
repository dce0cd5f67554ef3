"""Authenticated feedback, signed feedback tokens, and accuracy counters that are exact across replicas.

Replicas are separate apps in one process (each its own metrics registry, feedback memory and log), sharing
the feedback token and signing key files as pods share one Kubernetes Secret.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
from asgi_client import FEEDBACK_TOKEN, call, feedback, feedback_settings
from asgi_client import metric_samples as samples

from housing.errors import ConfigError
from housing.inference_log import read_records
from housing.serving.feedback_auth import BearerCheck, Refusal, read_secret_file
from housing.serving.feedback_client import feedback_body, feedback_headers, read_feedback_token
from housing.serving.feedback_token import FeedbackSigner
from housing.serving.schema import RequestError
from housing.serving.server import build_app
from housing.serving.settings import ServeSettings
from housing.variants import Variant

ROWS = [
    [8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23],
    [3.0, 20, 5.0, 1.0, 1000, 3.0, 34.0, -118.0],
    [5.5, 10, 6.0, 1.1, 2000, 2.8, 36.5, -120.0],
]


@pytest.fixture
def replica(model_dir, tmp_path):
    """``replica(name, **overrides)``: an app with the shared feedback Secret's files."""

    def make(name: str, model: object = None, **overrides):
        options = {"inference_log_dir": tmp_path / name / "log", **feedback_settings(tmp_path / "secret")}
        return build_app(ServeSettings(model_dir=model or model_dir, **{**options, **overrides}))

    return make


def predict(app, rows, request_id=None) -> httpx.Response:
    headers = {} if request_id is None else {"x-request-id": request_id}
    response = call(
        app, "POST", f"/v1/models/{app.router.name}:predict", json={"instances": rows}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response


def total(metrics, sample, **labels) -> float:
    """The sum over matching series, as PromQL's sum() does."""
    return sum(
        v
        for family in metrics.values()
        for name, sample_labels, v in family
        if name == sample and all(sample_labels.get(k) == w for k, w in labels.items())
    )


def rejected(app, reason: str) -> float:
    return total(samples(app), "model_feedback_rejected_total", reason=reason)


# --- the bearer token --------------------------------------------------------------------------------------


def test_feedback_needs_the_bearer_token_and_refusals_are_counted(replica):
    app = replica("a")
    response = predict(app, ROWS[:1])  # prediction routes stay open
    body = {"request_id": response.headers["x-request-id"], "actual": 2.0}
    for token, headers, message in (
        (None, {}, Refusal.MISSING),
        ("x" * 40, {}, Refusal.WRONG),
        (FEEDBACK_TOKEN[:-1], {}, Refusal.WRONG),
        (None, {"authorization": f"Basic {FEEDBACK_TOKEN}"}, Refusal.MISSING),
        (None, {"authorization": "Bearer "}, Refusal.MISSING),
    ):
        refused = call(
            app,
            "POST",
            "/v1/feedback",
            json=body,
            headers={**({} if token is None else {"authorization": f"Bearer {token}"}), **headers},
        )
        assert refused.status_code == 401
        assert refused.json() == {"error": f"unauthorized: {message}"}
        assert refused.headers["www-authenticate"] == 'Bearer realm="housing-feedback"'
    assert rejected(app, "unauthorized") == 5
    assert total(samples(app), "model_feedback_total") == 0  # nothing was scored
    assert feedback(app, body).status_code == 202  # the remembered prediction was not used up
    assert rejected(app, "unauthorized") == 5


def test_a_server_without_a_token_file_accepts_no_feedback_and_issues_no_tokens(model_dir, tmp_path):
    app = build_app(ServeSettings(model_dir=model_dir, inference_log_dir=tmp_path / "log"))
    response = predict(app, ROWS[:1])
    assert "x-feedback-token" not in response.headers
    refused = feedback(app, {"request_id": response.headers["x-request-id"], "actual": 2.0})
    assert refused.status_code == 401
    assert "accepts no feedback" in refused.json()["error"]
    assert rejected(app, "unauthorized") == 1


def test_other_refusals_are_counted_by_reason(replica):
    app = replica("a")
    assert feedback(app, {"request_id": "nope", "actual": 1.0}).status_code == 404
    assert feedback(app, {"request_id": "nope"}).status_code == 400
    assert (
        call(
            app,
            "POST",
            "/v1/feedback",
            content=b" " * 2_000_000,
            headers={"authorization": f"Bearer {FEEDBACK_TOKEN}"},
        ).status_code
        == 413
    )
    metrics = samples(app)
    assert {
        reason: total(metrics, "model_feedback_rejected_total", reason=reason)
        for reason in ("unauthorized", "invalid", "unknown_request", "too_large")
    } == {"unauthorized": 0, "invalid": 1, "unknown_request": 1, "too_large": 1}


def test_bearer_check_in_constant_time_against_the_configured_token():
    check = BearerCheck("s3cret-token-0123456789")
    assert check.refusal(b"Bearer s3cret-token-0123456789") is None
    assert check.refusal(b"bearer   s3cret-token-0123456789 ") is None  # scheme case, spaces
    assert check.refusal(b"Bearer s3cret-token-0123456788") is Refusal.WRONG
    assert check.refusal(None) is Refusal.MISSING
    assert BearerCheck(None).refusal(b"Bearer anything") is Refusal.DISABLED


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "cannot read the feedback token"),
        ("short", "at least 16"),
        ("tab\tinside-0123456789", "printable"),
    ],
)
def test_secret_files_are_checked(tmp_path, content, match):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=match) as info:
        read_secret_file(path, "feedback token")
    assert str(path) in str(info.value)


def test_an_unreadable_token_file_stops_the_server_from_starting(model_dir, tmp_path):
    settings = ServeSettings(
        model_dir=model_dir, feedback_token_file=tmp_path / "absent", no_inference_log=True
    )
    with pytest.raises(ConfigError, match="absent: cannot read the feedback token"):
        build_app(settings)


# --- signed tokens -----------------------------------------------------------------------------------------


def test_a_token_says_what_was_predicted_and_refuses_any_change():
    signer = FeedbackSigner(b"k" * 32, ttl_seconds=60, max_rows=10)
    predictions = np.array([1.25, 3.5], dtype=np.float32)
    token = signer.issue("req-1", "housing", "sha-abc", Variant.CHALLENGER, predictions, now=1000).decode()
    claim = signer.verify(token, now=1030)
    assert (claim.request_id, claim.model, claim.version, claim.variant, claim.issued_at) == (
        "req-1",
        "housing",
        "sha-abc",
        Variant.CHALLENGER,
        1000,
    )
    assert claim.predictions == [1.25, 3.5]
    assert len(token) < 120
    # Any changed character breaks the signature (or the encoding): no prediction can be made up.
    for position in range(3, len(token)):
        changed = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1 :]
        with pytest.raises(RequestError) as info:
            signer.verify(changed, now=1030)
        assert info.value.status == 400
    other_key = FeedbackSigner(b"x" * 32, ttl_seconds=60, max_rows=10)
    with pytest.raises(RequestError, match="signature does not match"):
        other_key.verify(token, now=1030)
    with pytest.raises(RequestError, match="expired") as info:
        signer.verify(token, now=1061)
    assert info.value.status == 404
    with pytest.raises(RequestError, match="in the future"):
        signer.verify(token, now=500)
    for junk in ("nope", "f1.", "f1.!!!!", "f1.AAAA"):
        with pytest.raises(RequestError, match="feedback_token"):
            signer.verify(junk, now=1030)


def test_responses_past_the_row_limit_carry_no_token(replica):
    app = replica("a", feedback_token_max_rows=2)
    assert "x-feedback-token" in predict(app, ROWS[:2]).headers
    assert "x-feedback-token" not in predict(app, ROWS).headers
    off = replica("b", feedback_token_max_rows=0)
    assert "x-feedback-token" not in predict(off, ROWS[:1]).headers
    v2 = call(
        app,
        "POST",
        f"/v2/models/{app.router.name}/infer",
        json={"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": ROWS[0]}]},
    )
    claim = app.core.signer.verify(v2.headers["x-feedback-token"])
    assert claim.request_id == v2.headers["x-request-id"]
    assert claim.predictions == pytest.approx(v2.json()["outputs"][0]["data"])


# --- exact across replicas ---------------------------------------------------------------------------------


def test_any_replica_scores_any_feedback_and_the_summed_counters_are_exact(replica):
    a, b = replica("a"), replica("b")
    responses = [predict(a, [row]) for row in ROWS] + [predict(b, ROWS[:2])]
    actuals = [[4.0], [1.5], [2.9], [4.4, 1.0]]
    # Feedback goes to whichever replica the load balancer picks: here, always the other one.
    for response, values, target in zip(responses, actuals, (b, b, b, a), strict=True):
        body = feedback_body(response.headers, values)
        assert (
            call(
                target, "POST", "/v1/feedback", content=body, headers=feedback_headers(FEEDBACK_TOKEN)
            ).status_code
            == 202
        )
    predicted = [p for r in responses for p in r.json()["predictions"]]
    observed = [v for values in actuals for v in values]
    errors = np.abs(np.array(predicted, dtype=np.float32).astype(np.float64) - observed)
    version = a.router.champion.version
    labels = {"variant": "champion", "version": version}
    both = [samples(a), samples(b)]
    count = sum(total(m, "model_feedback_total", **labels) for m in both)
    absolute = sum(total(m, "model_feedback_absolute_error_total", **labels) for m in both)
    within = sum(total(m, "model_feedback_within_tolerance_total", **labels) for m in both)
    within10 = sum(total(m, "model_feedback_within_10pct_total", **labels) for m in both)
    assert count == 5
    assert absolute / count == pytest.approx(errors.mean(), rel=1e-12)  # the MAE the alert computes
    assert within == np.sum(errors <= 0.25 * np.abs(observed))
    assert within10 == np.sum(errors <= 0.10 * np.abs(observed))
    assert [total(m, "model_feedback_total", **labels) for m in both] == [2, 3]
    # The memory path still needs the replica that answered.
    again = predict(a, ROWS[:1])
    assert feedback(b, {"request_id": again.headers["x-request-id"], "actual": 1.0}).status_code == 404
    assert feedback(a, {"request_id": again.headers["x-request-id"], "actual": 1.0}).status_code == 202
    # Each replica logs the feedback it took, by request id: the analysis joins all pods' logs.
    a.inference_log.close()
    b.inference_log.close()
    logged = read_records(a.inference_log.directory, kind="feedback") + read_records(
        b.inference_log.directory, kind="feedback"
    )
    assert sorted(r["request_id"] for r in logged) == sorted(
        [r.headers["x-request-id"] for r in responses for _ in r.json()["predictions"]]
        + [again.headers["x-request-id"]]
    )


def test_a_replica_counts_a_canarys_feedback_under_the_canarys_version(replica, challenger_dir):
    """During a rollout a stable pod may take feedback for the canary's predictions: it is counted under the
    canary's version, and this pod's own rolling gauges are left alone."""
    stable, canary = replica("stable"), replica("canary", model=challenger_dir)
    assert stable.router.champion.version != canary.router.champion.version
    response = predict(canary, ROWS[:1])
    assert (
        feedback(stable, {"feedback_token": response.headers["x-feedback-token"], "actual": 2.0}).status_code
        == 202
    )
    metrics = samples(stable)
    assert total(metrics, "model_feedback_total", version=canary.router.champion.version) == 1
    assert total(metrics, "model_feedback_total", version=stable.router.champion.version) == 0
    assert np.isnan(total(metrics, "model_mae_score", variant="champion"))


def test_a_token_is_scored_once_per_replica_with_its_remembered_prediction(replica):
    app = replica("a")
    response = predict(app, ROWS[:1])
    assert (
        feedback(app, {"feedback_token": response.headers["x-feedback-token"], "actual": 2.0}).status_code
        == 202
    )
    # The same request by id on the same replica: already fed back.
    assert feedback(app, {"request_id": response.headers["x-request-id"], "actual": 2.0}).status_code == 404


def test_tokens_of_another_model_or_key_are_refused(replica, tmp_path):
    app = replica("a")
    other = replica("b", model_name="another-model")
    response = predict(other, ROWS[:1])
    refused = feedback(app, {"feedback_token": response.headers["x-feedback-token"], "actual": 2.0})
    assert refused.status_code == 400
    assert "issued for model 'another-model'" in refused.json()["error"]
    key = tmp_path / "other-key"
    key.write_text("a-different-signing-key-0123456789")
    foreign = replica("c", feedback_signing_key_file=key)
    response = predict(foreign, ROWS[:1])
    refused = feedback(app, {"feedback_token": response.headers["x-feedback-token"], "actual": 2.0})
    assert refused.status_code == 400
    assert "signature does not match" in refused.json()["error"]
    assert rejected(app, "invalid") == 2


def test_without_a_shared_key_each_process_signs_with_its_own(model_dir, tmp_path):
    settings = feedback_settings(tmp_path / "secret")
    del settings["feedback_signing_key_file"]
    a = build_app(ServeSettings(model_dir=model_dir, no_inference_log=True, **settings))
    b = build_app(ServeSettings(model_dir=model_dir, no_inference_log=True, **settings))
    response = predict(a, ROWS[:1])
    body = {"feedback_token": response.headers["x-feedback-token"], "actual": 2.0}
    assert feedback(b, body).status_code == 400
    assert feedback(a, body).status_code == 202


def test_expired_tokens_are_refused_like_forgotten_predictions(replica, monkeypatch):
    app = replica("a", feedback_ttl_seconds=5)
    response = predict(app, ROWS[:1])
    later = time.time() + 10
    monkeypatch.setattr(time, "time", lambda: later)
    refused = feedback(app, {"feedback_token": response.headers["x-feedback-token"], "actual": 2.0})
    assert refused.status_code == 404
    assert "expired" in refused.json()["error"]


def test_the_client_helpers_build_what_the_server_takes(tmp_path):
    path = tmp_path / "token"
    path.write_text(FEEDBACK_TOKEN + "\n")
    assert read_feedback_token(path) == FEEDBACK_TOKEN
    assert feedback_headers("t")["Authorization"] == "Bearer t"
    headers = httpx.Headers({"x-feedback-token": "f1.abc", "x-request-id": "r1"})
    assert feedback_body(headers, [2.5]) == b'{"feedback_token":"f1.abc","actual":2.5}'
    assert (
        feedback_body(httpx.Headers({"X-Request-Id": "r1"}), [1, 2])
        == b'{"request_id":"r1","actuals":[1.0,2.0]}'
    )
    with pytest.raises(ValueError, match="neither"):
        feedback_body(httpx.Headers({}), [1.0])
