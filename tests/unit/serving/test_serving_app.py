"""The ASGI app in-process (httpx ASGITransport): routes, status codes, headers, feedback, faults, OpenAPI."""

from __future__ import annotations

import math
import uuid

import numpy as np
import orjson
import pytest
from asgi_client import AUTH, call, feedback, feedback_settings
from asgi_client import metric_samples as metric_values

from housing.artifact import load_verified, onnx_session
from housing.inference_log import read_records
from housing.serving.server import build_app
from housing.serving.settings import ServeSettings

ROW = [8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23]
ROW2 = [3.0, 20, 5.0, 1.0, 1000, 3.0, 34.0, -118.0]


@pytest.fixture
def make_app(model_dir, tmp_path):
    def make(**overrides):
        options = {
            "inference_log_dir": tmp_path / "log",
            **feedback_settings(tmp_path / "secrets"),
            **overrides,
        }
        settings = ServeSettings(model_dir=model_dir, **options)
        return build_app(settings)

    return make


@pytest.fixture
def app(make_app):
    return make_app()


def expected(model_dir, rows) -> np.ndarray:
    metadata, payload = load_verified(model_dir)
    session = onnx_session(payload)
    return session.run(None, {metadata.input_name: np.array(rows, dtype=np.float32)})[0].ravel()


def test_health_and_metadata_routes(app, model_dir):
    name = app.router.name
    assert call(app, "GET", "/").json() == {"status": "alive"}
    assert call(app, "GET", "/v2/health/live").json() == {"live": True}
    assert call(app, "GET", "/v2/health/ready").json() == {"ready": True}
    assert call(app, "GET", "/v1/models").json() == {"models": [name]}
    assert call(app, "GET", f"/v1/models/{name}").json() == {"name": name, "ready": True}
    assert call(app, "GET", f"/v2/models/{name}/ready").json() == {"name": name, "ready": True}
    server = call(app, "GET", "/v2").json()
    assert server["name"] == "housing-model-server"
    assert server["extensions"] == ["binary_tensor_data"]  # the Open Inference Protocol's name for it
    meta = call(app, "GET", f"/v2/models/{name}").json()
    version = app.router.champion.version
    assert meta == {
        "name": name,
        "versions": [version],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 8]}],
        "outputs": [{"name": "variable", "datatype": "FP32", "shape": [-1, 1]}],
    }
    assert call(app, "GET", f"/v2/models/{name}/versions/{version}").json() == meta
    assert call(app, "GET", f"/v2/models/{name}/versions/{version}/ready").status_code == 200


def test_v1_predict_matches_the_onnx_model_and_sets_headers(app, model_dir):
    response = call(
        app,
        "POST",
        f"/v1/models/{app.router.name}:predict",
        json={"instances": [ROW, dict(zip(app.router.champion.schema.names, ROW2, strict=True))]},
        headers={"X-Request-Id": "req-1"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "req-1"
    assert response.headers["x-model-version"] == app.router.champion.version
    assert response.headers["x-model-variant"] == "champion"
    predictions = response.json()["predictions"]
    np.testing.assert_allclose(predictions, expected(model_dir, [ROW, ROW2]), rtol=1e-6)


def test_v2_infer_follows_the_spec(app, model_dir):
    name = app.router.name
    body = {
        "id": "42",
        "inputs": [{"name": "input", "shape": [2, 8], "datatype": "FP32", "data": ROW + ROW2}],
    }
    response = call(app, "POST", f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200
    payload = response.json()
    assert payload["model_name"] == name
    assert payload["model_version"] == app.router.champion.version
    assert payload["id"] == "42"
    (output,) = payload["outputs"]
    assert output["name"] == "variable"
    assert output["datatype"] == "FP32"
    assert output["shape"] == [2, 1]
    np.testing.assert_allclose(output["data"], expected(model_dir, [ROW, ROW2]), rtol=1e-6)
    assert response.headers["x-request-id"] == "42"  # no header: the V2 id names the request
    versioned = call(app, "POST", f"/v2/models/{name}/versions/{payload['model_version']}/infer", json=body)
    assert versioned.json()["outputs"] == payload["outputs"]
    # Without any id a uuid4 hex is generated and echoed.
    generated = call(app, "POST", f"/v2/models/{name}/infer", json={"inputs": body["inputs"]})
    assert uuid.UUID(hex=generated.json()["id"]).version == 4
    assert generated.headers["x-request-id"] == generated.json()["id"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "match"),
    [
        ("POST", "/v1/models/nope:predict", {"json": {"instances": [ROW]}}, 404, "model 'nope' not found"),
        ("GET", "/v1/models/nope", {}, 404, "not found"),
        ("GET", "/v2/models/nope/ready", {}, 404, "not found"),
        ("POST", "/v2/models/{name}/versions/v0/infer", {"json": {}}, 404, "no version 'v0'"),
        ("GET", "/v2/models/{name}/versions/v0", {}, 404, "no version 'v0'"),
        ("GET", "/nope", {}, 404, "no route /nope"),
        ("GET", "/v2/models/{name}/explain", {}, 404, "no route"),
        ("GET", "/v1/models/{name}:predict", {}, 405, "use POST"),
        ("PUT", "/v2/health/ready", {}, 405, "use GET"),
        ("DELETE", "/v2/models/{name}/infer", {}, 405, "use POST"),
        ("POST", "/v1/models/{name}:predict", {"content": b"{not json"}, 400, "not valid JSON"),
        ("POST", "/v1/models/{name}:predict", {"content": b""}, 400, "empty"),
        ("POST", "/v1/models/{name}:predict", {"content": b"\xff\xfe"}, 400, "not valid JSON"),
        ("POST", "/v1/models/{name}:predict", {"json": {"instances": [ROW] * 1001}}, 413, "limit of 1000"),
        ("POST", "/v1/models/{name}:predict", {"content": b" " * 2_000_000}, 413, "exceeds the limit"),
        ("POST", "/v2/models/{name}/infer", {"json": {"inputs": "x"}}, 400, "inputs: must be"),
        (
            "POST",
            "/v1/feedback",
            {"json": {"request_id": "unknown", "actual": 1.0}, "headers": AUTH},
            404,
            "unknown, expired",
        ),
        ("POST", "/v1/feedback", {"json": {"request_id": 3}, "headers": AUTH}, 400, "request_id"),
        ("POST", "/v1/feedback", {"json": {"request_id": "a", "actual": 1.0}}, 401, "missing credential"),
    ],
)
def test_errors_are_json_with_a_message(app, method, path, kwargs, status, match):
    response = call(app, method, path.format(name=app.router.name), **kwargs)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert match in response.json()["error"]
    if status == 405:
        assert response.headers["allow"] in ("GET", "POST")


def value(metrics, family, sample=None, **labels) -> float:
    for name, sample_labels, v in metrics[family]:
        if (sample is None or name == sample) and all(sample_labels.get(k) == w for k, w in labels.items()):
            return v
    raise KeyError((family, labels))


def test_feedback_updates_scores_and_the_log(app):
    name = app.router.name
    one = call(
        app, "POST", f"/v1/models/{name}:predict", json={"instances": [ROW]}, headers={"x-request-id": "a"}
    )
    two = call(app, "POST", f"/v1/models/{name}:predict", json={"instances": [ROW, ROW2]})
    prediction = one.json()["predictions"][0]
    accepted = feedback(app, {"request_id": "a", "actual": prediction * 1.05})
    assert accepted.status_code == 202
    assert accepted.json() == {"accepted": 1}
    again = feedback(app, {"request_id": "a", "actual": 1.0})
    assert again.status_code == 404  # one feedback per request
    wrong_count = feedback(app, {"request_id": two.headers["x-request-id"], "actual": 1.0})
    assert wrong_count.status_code == 400
    assert "had 2 instance(s)" in wrong_count.json()["error"]
    p1, p2 = two.json()["predictions"]
    actuals = [p1 * 2, p2 + 0.01]
    assert feedback(app, {"request_id": two.headers["x-request-id"], "actuals": actuals}).status_code == 202

    metrics = metric_values(app)
    pairs = [(prediction, prediction * 1.05), (p1, actuals[0]), (p2, actuals[1])]
    mae = np.mean([abs(p - a) for p, a in pairs])
    assert value(metrics, "model_mae_score", variant="champion") == pytest.approx(mae, rel=1e-5)
    assert value(metrics, "model_ppe10_score") == pytest.approx(2 / 3)
    assert value(metrics, "model_ppe_score") == pytest.approx(2 / 3)  # p1 vs 2*p1 is 50% off
    assert not math.isnan(value(metrics, "model_r2_score"))
    assert value(metrics, "model_feedback", "model_feedback_total") == 3

    app.inference_log.close()
    fed_back = read_records(app.inference_log.directory, kind="feedback")
    assert [(r["request_id"], r["instance"]) for r in fed_back] == [
        ("a", 0),
        (two.headers["x-request-id"], 0),
        (two.headers["x-request-id"], 1),
    ]


def test_metrics_and_inference_log_count_successes_and_errors(app):
    name = app.router.name
    call(
        app,
        "POST",
        f"/v1/models/{name}:predict",
        json={"instances": [ROW, ROW2]},
        headers={"x-request-id": "ok"},
    )
    call(
        app,
        "POST",
        f"/v1/models/{name}:predict",
        json={"instances": [[-5.0, *ROW[1:]]]},
        headers={"x-request-id": "bad"},
    )
    call(app, "POST", f"/v1/models/{name}:predict", content=b"[", headers={"x-request-id": "junk"})
    call(
        app, "POST", "/v1/models/other:predict", json={"instances": [ROW]}
    )  # unknown model: not this model's error
    metrics = metric_values(app)
    assert value(metrics, "model_prediction", "model_prediction_total", model=name, variant="champion") == 1
    assert value(metrics, "model_prediction_instances", "model_prediction_instances_total") == 2
    assert value(metrics, "model_prediction_errors", reason="out_of_range") == 1
    assert value(metrics, "model_prediction_errors", reason="invalid_json") == 1
    assert value(metrics, "model_prediction_errors", reason="invalid_input") == 0
    assert value(metrics, "model_prediction_latency_seconds", "model_prediction_latency_seconds_count") == 1
    assert value(metrics, "model_prediction_value", "model_prediction_value_count") == 2
    assert value(metrics, "model_version_info", version=app.router.champion.version) == 1
    for reason in ("queue_full", "write_error", "closed"):
        assert (
            value(metrics, "model_inference_log_dropped", "model_inference_log_dropped_total", reason=reason)
            == 0
        )
    # 2 prediction rows and 2 error records, all written by the time the writer drains
    assert value(metrics, "model_inference_log_rows", "model_inference_log_rows_total") == 4
    assert value(metrics, "model_inference_log_healthy") == 1
    assert "process_resident_memory_bytes" in metrics

    app.inference_log.close()
    records = read_records(app.inference_log.directory)
    predictions = [r for r in records if r["kind"] == "prediction"]
    assert [(r["request_id"], r["instance"]) for r in predictions] == [("ok", 0), ("ok", 1)]
    assert predictions[1]["features"] == dict(
        zip(app.router.champion.schema.names, map(float, ROW2), strict=True)
    )
    assert predictions[0]["variant"] == "champion"
    assert predictions[0]["latency_s"] > 0
    errors = [(r["request_id"], r["reason"]) for r in records if r["kind"] == "error"]
    assert errors == [("bad", "out_of_range"), ("junk", "invalid_json")]


def test_fault_injection_errors_and_latency(make_app):
    always = make_app(fault_error_rate=1.0)
    name = always.router.name
    response = call(always, "POST", f"/v1/models/{name}:predict", json={"instances": [ROW]})
    assert response.status_code == 500
    assert "injected" in response.json()["error"]
    assert response.headers["x-model-variant"] == "champion"
    assert value(metric_values(always), "model_prediction_errors", reason="injected") == 1
    assert call(always, "GET", "/v2/health/ready").status_code == 200  # health is not affected

    slow = make_app(fault_latency_ms=150)
    response = call(slow, "POST", f"/v1/models/{name}:predict", json={"instances": [ROW]})
    assert response.status_code == 200
    assert (
        value(metric_values(slow), "model_prediction_latency_seconds", "model_prediction_latency_seconds_sum")
        >= 0.15
    )


def test_an_unexpected_exception_is_a_500_not_a_crash(app, monkeypatch):
    def explode(_X):
        raise RuntimeError("onnxruntime fell over")

    monkeypatch.setattr(app.router.champion, "predict", explode)
    name = app.router.name
    response = call(app, "POST", f"/v1/models/{name}:predict", json={"instances": [ROW]})
    assert response.status_code == 500
    assert response.json() == {"error": "inference failed: RuntimeError"}
    assert value(metric_values(app), "model_prediction_errors", reason="model_error") == 1

    async def buggy_handler(*_args):
        raise TypeError("a bug in a handler")

    handlers = app.routes.resolve(f"/v1/models/{name}")[0]
    monkeypatch.setitem(handlers, "GET", buggy_handler)  # caught at the top
    assert call(app, "GET", f"/v1/models/{name}").json() == {"error": "internal server error"}
    assert call(app, "GET", "/v2/health/live").status_code == 200


def test_openapi_document_describes_every_route(app):
    document = call(app, "GET", "/openapi.json").json()
    assert document["openapi"].startswith("3.0")
    paths = document["paths"]
    for route in (
        "/v1/models/{model_name}:predict",
        "/v2/models/{model_name}/infer",
        "/v2/health/ready",
        "/v1/feedback",
        "/metrics",
        "/v2",
    ):
        assert route in paths
    assert paths["/v1/models/{model_name}:predict"]["post"]["parameters"][0]["schema"]["enum"] == [
        app.router.name
    ]
    schemas = document["components"]["schemas"]
    row = schemas["V1Request"]["properties"]["instances"]["items"]["oneOf"][1]
    row = schemas[row["$ref"].rsplit("/", 1)[1]] if "$ref" in row else row  # the named row's own schema
    assert row["properties"]["Latitude"] == {"type": "number", "minimum": 32.4, "maximum": 42.1}
    import schemathesis  # validates the document against the OpenAPI 3.0 meta-schema

    schema = schemathesis.openapi.from_dict(orjson.loads(orjson.dumps(document)))
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) == len([m for p in paths.values() for m in p])


def test_model_name_override(make_app):
    app = make_app(model_name="housing")
    assert call(app, "POST", "/v1/models/housing:predict", json={"instances": [ROW]}).status_code == 200
    assert call(app, "GET", "/v1/models").json() == {"models": ["housing"]}
