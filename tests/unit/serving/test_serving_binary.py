"""The Open Inference Protocol's binary tensor extension: request parsing, errors naming the field, and
binary responses through the ASGI app (KServe's and Triton's "Binary Tensor Data Extension")."""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pytest
from asgi_client import call
from hypothesis import given, settings
from hypothesis import strategies as st
from test_serving_schema import FEATURES, NAMED, ROW, SPECS, _check_outcome, rejects

from housing.artifact import load_verified, onnx_session
from housing.serving import binary
from housing.serving.http import loads
from housing.serving.schema import FeatureSchema
from housing.serving.server import build_app
from housing.serving.settings import ServeSettings

ROW2 = [3.0, 20, 5.0, 1.0, 1000, 3.0, 34.0, -118.0]


def body_with(header: dict, *tensors: bytes) -> tuple[bytes, bytes]:
    """(body, Inference-Header-Content-Length) as a client using the extension sends them."""
    head = json.dumps(header).encode()
    return head + b"".join(tensors), str(len(head)).encode()


def binary_input(name: str, shape: list[int], data: bytes, datatype: str = "FP32") -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": len(data)}}


def fp32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def parse(schema: FeatureSchema, body: bytes, header: bytes | None):
    tensors = None
    if header is not None:
        json_part, tensors = binary.split_request(body, header)
        body = bytes(json_part)
    return schema.parse_v2(loads(body), "input", "variable", tensors)


@pytest.fixture
def schema() -> FeatureSchema:
    return FeatureSchema(SPECS, max_batch=10)


def test_binary_inputs_give_the_same_matrix_as_json(schema):
    as_json = schema.parse_v2(
        {"inputs": [{"name": "input", "shape": [2, 8], "datatype": "FP64", "data": ROW + ROW2}]},
        "input",
        "variable",
    )
    data64 = struct.pack("<16d", *ROW, *ROW2)
    body, header = body_with({"inputs": [binary_input("input", [2, 8], data64, "FP64")]}, data64)
    as_binary = parse(schema, body, header)
    np.testing.assert_array_equal(as_binary.features, as_json.features)
    data32 = fp32(*ROW, *ROW2)
    body, header = body_with({"inputs": [binary_input("input", [2, 8], data32)]}, data32)
    np.testing.assert_array_equal(parse(schema, body, header).features, np.float32(as_json.features))
    assert not as_binary.binary_output


def test_per_feature_binary_and_json_inputs_mix_in_input_order(schema):
    tensors, data = [], []
    for k, name in enumerate(FEATURES):
        if k % 2:  # odd features as JSON, even ones as binary
            tensors.append({"name": name, "shape": [1], "datatype": "FP32", "data": [NAMED[name]]})
        else:
            data.append(fp32(NAMED[name]))
            tensors.append(binary_input(name, [1], data[-1]))
    body, header = body_with({"inputs": tensors}, *data)
    np.testing.assert_allclose(parse(schema, body, header).features, [ROW], rtol=1e-6)


@pytest.mark.parametrize(
    ("parameters", "outputs", "expected"),
    [
        (None, None, False),
        ({"binary_data_output": True}, None, True),
        ({"binary_data_output": True}, [{"name": "variable"}], True),
        ({"binary_data_output": True}, [{"name": "variable", "parameters": {"binary_data": False}}], False),
        (None, [{"name": "variable", "parameters": {"binary_data": True}}], True),
    ],
)
def test_binary_output_is_asked_per_request_or_per_output(schema, parameters, outputs, expected):
    request = {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": ROW}]}
    if parameters is not None:
        request["parameters"] = parameters
    if outputs is not None:
        request["outputs"] = outputs
    assert schema.parse_v2(request, "input", "variable").binary_output is expected


@pytest.mark.parametrize(
    ("header", "tensors", "trailing", "match"),
    [
        (b"abc", [], b"", "Inference-Header-Content-Length: 'abc' is not a non-negative integer"),
        (b"-3", [], b"", "Inference-Header-Content-Length: '-3' is not"),
        (b"99999", [], b"", "Inference-Header-Content-Length: 99999 is more than the body's"),
        (None, [binary_input("input", [1, 8], fp32(*ROW))], b"", "needs the Inference-Header-Content-Length"),
        (
            "auto",
            [binary_input("input", [1, 8], fp32(*ROW[:4]))],
            fp32(*ROW[:4]),
            "16 bytes, but shape [1, 8] of FP32 needs 32",
        ),
        (
            "auto",
            [binary_input("input", [1, 8], fp32(*ROW))],
            fp32(*ROW[:4]),
            "only 16 bytes of binary data remain",
        ),
        (
            "auto",
            [binary_input("input", [1, 8], fp32(*ROW))],
            fp32(*ROW, 1.0),
            "4 bytes after the JSON part belong to no input",
        ),
        (
            "auto",
            [{**binary_input("input", [1, 8], fp32(*ROW)), "data": ROW}],
            fp32(*ROW),
            'has both "data" and',
        ),
        (
            "auto",
            [{**binary_input("input", [1, 8], b""), "parameters": {"binary_data_size": True}}],
            b"",
            "binary_data_size: must be a non-negative integer",
        ),
        (
            "auto",
            [{**binary_input("input", [1, 8], b""), "parameters": {"binary_data_size": -32}}],
            b"",
            "binary_data_size: must be a non-negative integer",
        ),
        (
            "auto",
            [binary_input("input", [1, 8], fp32(*ROW), "INT32")],
            fp32(*ROW),
            "inputs[0].datatype: 'INT32' is not supported",
        ),
        ("auto", [{"name": "input", "shape": [1, 8], "datatype": "FP32"}], b"", 'inputs[0]: missing "data"'),
    ],
)
def test_malformed_binary_requests_name_the_field(schema, header, tensors, trailing, match):
    head = json.dumps({"inputs": tensors}).encode()
    if header == "auto":
        header = str(len(head)).encode()
    error = rejects(lambda: parse(schema, head + trailing, header), match=match)
    assert error.reason == "invalid_input"


def test_binary_values_are_range_checked_like_json_ones(schema):
    row = [*ROW[:6], 55.0, ROW[7]]
    body, header = body_with({"inputs": [binary_input("input", [1, 8], fp32(*row))]}, fp32(*row))
    rejects(
        lambda: parse(schema, body, header), match="55 is outside the valid range [32.4, 42.1] of Latitude"
    )
    nan = [*ROW[:7], float("nan")]
    body, header = body_with({"inputs": [binary_input("input", [1, 8], fp32(*nan))]}, fp32(*nan))
    rejects(lambda: parse(schema, body, header), match="is not a finite number")


@settings(max_examples=300, deadline=None)
@given(
    header=st.binary(max_size=6) | st.integers(-5, 400).map(lambda n: str(n).encode()),
    tail=st.binary(max_size=64),
    size=st.integers(-4, 64) | st.sampled_from([None, True, "32"]),
    shape=st.sampled_from([[1, 8], [2, 8], [8], [0, 8]]),
    datatype=st.sampled_from(["FP32", "FP64", "BYTES"]),
)
def test_binary_parsing_never_fails_unexpectedly(header, tail, size, shape, datatype):
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": shape,
                    "datatype": datatype,
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    ).encode()
    _check_outcome(parse, FeatureSchema(SPECS, max_batch=10), head + tail, header)


# --- through the app ---------------------------------------------------------------------------------------


@pytest.fixture
def app(model_dir, tmp_path):
    return build_app(ServeSettings(model_dir=model_dir, inference_log_dir=tmp_path / "log"))


def infer(app, body: bytes, headers: dict) -> httpx.Response:
    return call(app, "POST", f"/v2/models/{app.router.name}/infer", content=body, headers=headers)


def expected(model_dir, rows) -> np.ndarray:
    metadata, payload = load_verified(model_dir)
    return onnx_session(payload).run(None, {metadata.input_name: np.array(rows, np.float32)})[0].ravel()


def test_binary_in_binary_out_through_the_app(app, model_dir):
    data = fp32(*ROW, *ROW2)
    body, header = body_with(
        {
            "id": "b-1",
            "inputs": [binary_input("input", [2, 8], data)],
            "parameters": {"binary_data_output": True},
        },
        data,
    )
    response = infer(
        app,
        body,
        {"Inference-Header-Content-Length": header.decode(), "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    json_length = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:json_length])
    (output,) = head["outputs"]
    assert output == {
        "name": "variable",
        "shape": [2, 1],
        "datatype": "FP32",
        "parameters": {"binary_data_size": 8},
    }
    assert "data" not in output
    assert head["id"] == "b-1"
    assert head["model_version"] == response.headers["x-model-version"]
    values = np.frombuffer(response.content[json_length:], dtype="<f4")
    np.testing.assert_array_equal(values, expected(model_dir, [ROW, ROW2]))


def test_binary_in_json_out_and_errors_stay_json(app, model_dir):
    data = fp32(*ROW)
    body, header = body_with({"inputs": [binary_input("input", [1, 8], data)]}, data)
    response = infer(app, body, {"Inference-Header-Content-Length": header.decode()})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in response.headers
    np.testing.assert_allclose(response.json()["outputs"][0]["data"], expected(model_dir, [ROW]), rtol=1e-6)
    bad = infer(app, body, {"Inference-Header-Content-Length": "12x"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/json"
    assert bad.json()["error"].startswith("Inference-Header-Content-Length: '12x'")
