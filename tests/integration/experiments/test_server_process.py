"""housing.server_process, the one way the loop and the tests run `housing serve`: a server that cannot start
is a one-line error with its last output; a started one answers, reports its gauges, and stops cleanly with
its inference log flushed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from housing.inference_log import read_records
from housing.server_process import ServerStartError, VariantScores, start_server
from housing.variants import Variant

pytestmark = pytest.mark.integration

ROW = [8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23]


def post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_a_server_that_exits_is_a_start_error_with_its_last_output(tmp_path):
    with pytest.raises(ServerStartError, match=r"model server exited with 2: .*model metadata not found"):
        start_server(tmp_path / "server.log", "--model-dir", str(tmp_path / "missing"))


def test_a_started_server_answers_reports_gauges_and_flushes_its_log_on_stop(model_dir, tmp_path):
    log_dir = tmp_path / "log"
    with start_server(tmp_path / "server.log", "--model-dir", str(model_dir), log_dir=log_dir) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.gauges() == {
            Variant.CHAMPION: VariantScores(mae=None, r2=None, feedback=0)
        }  # no feedback yet
        status, headers, body = post(
            f"{server.url}/v1/models/california-housing:predict", {"instances": [ROW]}
        )
        assert status == 200
        request_id = headers["x-request-id"]
        actual = body["predictions"][0] + 0.5
        token = server.feedback_token_file.read_text()
        body = {"feedback_token": headers["x-feedback-token"], "actual": actual}
        assert post(f"{server.url}/v1/feedback", body)[0] == 401  # the credential is not optional
        assert post(f"{server.url}/v1/feedback", body, {"Authorization": f"Bearer {token}"})[0] == 202
        scores = server.gauges()[Variant.CHAMPION]
        assert (scores.mae, scores.feedback) == (pytest.approx(0.5), 1)
    assert server.proc.returncode in (0, -15, 143)  # SIGTERM: drained and flushed
    assert [r["request_id"] for r in read_records(log_dir, kind="prediction")] == [request_id]
    assert any(line.get("message") == "model server starting" for line in server.log_lines())
