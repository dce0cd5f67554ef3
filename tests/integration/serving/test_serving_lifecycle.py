"""Process lifecycle: drain + flush on SIGTERM, log rotation under traffic, refusing a tampered model."""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
import time

import pytest
from serving_support import ROW, command, free_port, http, launch, start_server

from housing.inference_log import log_files, read_records

pytestmark = pytest.mark.integration

# uvicorn re-raises SIGTERM after its graceful shutdown: the process ends "killed by SIGTERM" (exit 143).
CLEAN_EXIT = (0, -signal.SIGTERM)


def test_sigterm_answers_in_flight_requests_and_flushes_the_log(model_dir, tmp_path):
    # Long flush interval: only the shutdown flush can get the records to disk in time.
    server = start_server(
        model_dir, tmp_path, "--fault-latency-ms", "1000", env={"HOUSING_LOG_LEVEL": "INFO"}
    )
    name = http("GET", f"{server.url}/v1/models")[2]["models"][0]
    results: list[tuple[int, dict]] = []

    def slow_request(i: int) -> None:
        status, _, body = http(
            "POST",
            f"{server.url}/v1/models/{name}:predict",
            {"instances": [ROW, ROW]},
            {"X-Request-Id": f"inflight-{i}"},
        )
        results.append((status, body))

    threads = [threading.Thread(target=slow_request, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    # Wait until all 4 requests are inside the server (sleeping on the injected latency), then SIGTERM.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = http("GET", f"{server.url}/metrics")[2]
        if re.search(r"^model_prediction_in_flight 4\.0$", metrics, re.M):
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the 4 requests never were in flight together")
    server.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(10)
    assert server.proc.wait(20) in CLEAN_EXIT
    assert sorted(status for status, _ in results) == [200] * 4, results
    records = read_records(server.log_dir, kind="prediction")
    assert sorted({r["request_id"] for r in records}) == [f"inflight-{i}" for i in range(4)]
    assert len(records) == 8
    messages = [line["message"] for line in server.log_lines()]
    assert "inference log flushed" in messages
    assert messages.index("inference log flushed") > messages.index("server ready")


def test_log_rotates_under_traffic(model_dir, tmp_path):
    server = start_server(model_dir, tmp_path, "--log-max-bytes", "4096", "--log-max-files", "0")
    name = http("GET", f"{server.url}/v1/models")[2]["models"][0]
    for i in range(20):  # ~420 bytes per row: ~8 KB per batch of 20 rows -> a new file every batch
        status, _, _ = http(
            "POST",
            f"{server.url}/v1/models/{name}:predict",
            {"instances": [ROW] * 20},
            {"X-Request-Id": f"batch-{i:02d}"},
        )
        assert status == 200
    assert server.stop() in CLEAN_EXIT
    files = log_files(server.log_dir)
    assert len(files) >= 10
    records = read_records(server.log_dir, kind="prediction")
    assert len(records) == 400
    assert [r["request_id"] for r in records] == sorted(r["request_id"] for r in records)  # time order


def test_refuses_to_start_on_a_tampered_model(model_dir, tmp_path):
    tampered = tmp_path / "model"
    shutil.copytree(model_dir, tampered)
    onnx = tampered / "model.onnx"
    payload = bytearray(onnx.read_bytes())
    payload[-1] ^= 0xFF
    onnx.write_bytes(bytes(payload))
    stderr = tmp_path / "server.log"
    proc = launch(
        command(
            "--port",
            str(free_port()),
            "--model-dir",
            str(tampered),
            "--inference-log-dir",
            str(tmp_path / "log"),
        ),
        stderr,
    )
    assert proc.wait(60) == 2
    output = stderr.read_text()
    refusal = [
        json.loads(line) for line in output.splitlines() if line.startswith("{") and "refusing" in line
    ]
    assert refusal
    assert refusal[0]["level"] == "ERROR"
    assert "does not match" in refusal[0]["message"]
    assert "tampered" in refusal[0]["message"]
    assert "error:" in output  # the CLI's one-line error, no traceback
    assert "Traceback" not in output
    assert not (tmp_path / "log").exists()  # never got as far as serving


def test_refuses_to_start_without_a_model(tmp_path):
    stderr = tmp_path / "server.log"
    proc = launch(command("--port", str(free_port()), "--model-dir", str(tmp_path / "missing")), stderr)
    assert proc.wait(60) == 2
    assert "model metadata not found" in stderr.read_text()
