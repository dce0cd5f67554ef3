"""The real server over HTTP: V1/V2 with plain urllib, KServe's own client, metrics, a bounded load test."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_support import ROW, http

from housing.artifact import load_verified, onnx_session
from housing.config import FEATURES

pytestmark = pytest.mark.integration


def model_name(server) -> str:
    status, _, body = http("GET", f"{server.url}/v1/models")
    assert status == 200
    return body["models"][0]


def reference_prediction(model_dir, rows) -> np.ndarray:
    metadata, payload = load_verified(model_dir)
    return onnx_session(payload).run(None, {metadata.input_name: np.array(rows, np.float32)})[0].ravel()


def test_v1_and_v2_with_the_standard_library(server, model_dir):
    name = model_name(server)
    status, headers, body = http(
        "POST", f"{server.url}/v1/models/{name}:predict", {"instances": [ROW]}, {"X-Request-Id": "urllib-1"}
    )
    assert status == 200
    assert headers["X-Request-Id"] == "urllib-1"
    assert headers["X-Model-Variant"] == "champion"
    expected = reference_prediction(model_dir, [ROW])
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6)

    infer = {"id": "v2-1", "inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": [ROW]}]}
    status, headers, body = http("POST", f"{server.url}/v2/models/{name}/infer", infer)
    assert status == 200
    assert body["id"] == "v2-1"
    assert headers["X-Model-Version"] == body["model_version"]
    np.testing.assert_allclose(body["outputs"][0]["data"], expected, rtol=1e-6)

    status, _, body = http("POST", f"{server.url}/v1/models/{name}:predict", b"{oops")
    assert status == 400
    assert "not valid JSON" in body["error"]
    status, _, body = http("GET", f"{server.url}/v2/health/live")
    assert (status, body) == (200, {"live": True})


def test_kserve_sdk_clients_can_talk_to_the_server(server, model_dir):
    """Conformance with a real third-party client: KServe's own REST client, V1 and V2."""
    kserve = pytest.importorskip(
        "kserve", reason="kserve SDK (the bench extra, part of dev) is not installed"
    )
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    name = model_name(server)
    expected = reference_prediction(model_dir, [ROW, ROW])

    async def talk():
        v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0, timeout=10))
        v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=10))
        try:
            assert await v1.is_server_live(server.url)
            assert await v1.is_model_ready(server.url, name)
            v1_result = await v1.infer(server.url, {"instances": [ROW, ROW]}, model_name=name)
            assert await v2.is_server_live(server.url)
            assert await v2.is_server_ready(server.url)
            assert await v2.is_model_ready(server.url, name)
            tensor = InferInput(name="input", shape=[2, 8], datatype="FP32")
            tensor.set_data_from_numpy(np.array([ROW, ROW], np.float32), binary_data=False)
            v2_result = await v2.infer(
                server.url,
                InferRequest(model_name=name, infer_inputs=[tensor], request_id="kserve-1"),
                model_name=name,
            )
            return v1_result, v2_result
        finally:
            await v1.close()
            await v2.close()

    v1_result, v2_result = asyncio.run(talk())
    np.testing.assert_allclose(v1_result["predictions"], expected, rtol=1e-6)
    assert v2_result.id == "kserve-1"
    assert v2_result.model_name == name
    output = v2_result.outputs[0]
    assert output.name == "variable"
    assert output.datatype == "FP32"
    assert list(output.shape) == [2, 1]
    np.testing.assert_allclose(output.as_numpy().ravel(), expected, rtol=1e-6)
    assert kserve.__name__ == "kserve"


def test_triton_http_client_speaks_open_inference_protocol_v2(server, model_dir):
    """Conformance with a second, independent V2 client: NVIDIA Triton's HTTP client (JSON tensors)."""
    triton = pytest.importorskip(
        "tritonclient.http", reason="tritonclient (the bench extra, part of dev) is not installed"
    )

    name = model_name(server)
    expected = reference_prediction(model_dir, [ROW, ROW])
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"), connection_timeout=10)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(name)
        metadata = client.get_model_metadata(name)
        assert metadata["name"] == name
        assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
            ("input", "FP32", [-1, 8])
        ]
        tensor = triton.InferInput("input", [2, 8], "FP32")
        tensor.set_data_from_numpy(np.array([ROW, ROW], np.float32), binary_data=False)
        wanted = triton.InferRequestedOutput(metadata["outputs"][0]["name"], binary_data=False)
        result = client.infer(name, [tensor], outputs=[wanted], request_id="triton-1")
    finally:
        client.close()
    assert result.get_response()["id"] == "triton-1"
    np.testing.assert_allclose(result.as_numpy(metadata["outputs"][0]["name"]).ravel(), expected, rtol=1e-6)


def test_triton_http_client_in_its_default_binary_mode(server, model_dir):
    """tritonclient's defaults: binary input tensors, and binary outputs (all outputs when none is named,
    binary_data=True when one is), with Inference-Header-Content-Length both ways."""
    triton = pytest.importorskip(
        "tritonclient.http", reason="tritonclient (the bench extra, part of dev) is not installed"
    )
    name = model_name(server)
    rows = np.array([ROW, [3.0, 20, 5.0, 1.0, 1000, 3.0, 34.0, -118.0]], np.float32)
    expected = reference_prediction(model_dir, rows)
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"), connection_timeout=10)
    try:
        metadata = client.get_server_metadata()
        assert "binary_tensor_data" in metadata["extensions"]
        tensor = triton.InferInput("input", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)  # binary_data=True by default
        assert tensor._get_binary_data() is not None
        every_output = client.infer(name, [tensor], request_id="triton-bin-1")
        one_output = client.infer(name, [tensor], outputs=[triton.InferRequestedOutput("variable")])
        per_feature = [triton.InferInput(f, [2], "FP64") for f in FEATURES]
        for k, feature_input in enumerate(per_feature):
            feature_input.set_data_from_numpy(rows[:, k].astype(np.float64))
        by_feature = client.infer(name, per_feature)
    finally:
        client.close()
    for result in (every_output, one_output, by_feature):
        output = result.get_output("variable")
        assert output["parameters"]["binary_data_size"] == 8  # the values came as binary data
        assert "data" not in output
        np.testing.assert_array_equal(result.as_numpy("variable").ravel(), expected)
    assert every_output.get_response()["id"] == "triton-bin-1"


def test_kserve_sdk_client_with_binary_tensors(server, model_dir):
    """KServe's own client: InferInput's default binary data, binary outputs requested per output."""
    pytest.importorskip("kserve", reason="kserve SDK (the bench extra, part of dev) is not installed")
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    name = model_name(server)
    rows = np.array([ROW, ROW], np.float32)
    expected = reference_prediction(model_dir, rows)

    async def talk():
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=10))
        try:
            tensor = InferInput(name="input", shape=[2, 8], datatype="FP32")
            tensor.set_data_from_numpy(rows)  # binary_data=True by default
            assert tensor.parameters["binary_data_size"] == rows.nbytes
            request = InferRequest(
                model_name=name,
                infer_inputs=[tensor],
                request_id="kserve-bin-1",
                request_outputs=[RequestedOutput(name="variable", parameters={"binary_data": True})],
            )
            headers: dict = {}
            result = await client.infer(server.url, request, model_name=name, response_headers=headers)
            return result, headers
        finally:
            await client.close()

    result, headers = asyncio.run(talk())
    assert result.id == "kserve-bin-1"
    assert headers["content-type"] == "application/octet-stream"
    assert int(headers["inference-header-content-length"]) > 0  # the client decoded binary outputs
    (output,) = result.outputs
    np.testing.assert_array_equal(output.as_numpy().ravel(), expected)


def test_metrics_parse_with_the_prometheus_parser(server):
    name = model_name(server)
    for _ in range(3):
        http("POST", f"{server.url}/v1/models/{name}:predict", {"instances": [ROW, ROW]})
    http("POST", f"{server.url}/v1/models/{name}:predict", {"instances": [[*ROW[:6], 99.0, ROW[7]]]})
    status, headers, text = http("GET", f"{server.url}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for required in (
        "model_prediction",
        "model_prediction_errors",
        "model_prediction_latency_seconds",
        "model_version_info",
        "model_prediction_value",
        "model_mae_score",
        "model_r2_score",
        "model_ppe10_score",
        "model_ppe_score",
        "model_inference_log_dropped",
    ):
        assert required in families, required
    assert families["model_prediction_latency_seconds"].type == "histogram"
    assert families["model_prediction_value"].type == "histogram"
    for family in families.values():  # label cardinality is bounded: only these label names exist
        for sample in family.samples:
            assert set(sample.labels) <= {"model", "variant", "reason", "version", "le"}, sample
    totals = {s.name: s.value for s in families["model_prediction"].samples}
    assert totals["model_prediction_total"] >= 3
    errors = {s.labels["reason"]: s.value for s in families["model_prediction_errors"].samples}
    assert errors["out_of_range"] >= 1


async def _load(
    url: str, path: str, body: bytes, seconds: float, concurrency: int
) -> tuple[int, int, list[float]]:
    """A minimal keep-alive HTTP/1.1 load generator: (ok, errors, latencies)."""
    ok = errors = 0
    latencies: list[float] = []
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    deadline = time.monotonic() + seconds

    async def worker():
        nonlocal ok, errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if status_line.split()[1] == b"200":
                    ok += 1
                else:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, errors, latencies


def test_bounded_load_has_no_errors(server):
    name = model_name(server)
    body = b'{"instances": [[8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23]]}'
    ok, errors, latencies = asyncio.run(_load(server.url, f"/v1/models/{name}:predict", body, 3.0, 8))
    assert errors == 0, (ok, errors)
    assert ok > 500, (ok, errors)  # > 170 req/s even on a busy shared machine
    assert np.percentile(latencies, 99) < 0.5
    status, _, body = http("GET", f"{server.url}/v2/health/ready")
    assert status == 200
