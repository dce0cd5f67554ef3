"""Concurrent requests share model calls (bit-for-bit the same answers), and responses leave in one write."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from housing.serving.batching import Batcher
from housing.serving.server import build_app
from housing.serving.settings import ServeSettings
from housing.serving.transport import OneWriteTransport

ROWS = [
    [8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23],
    [3.0, 20, 5.0, 1.0, 1000, 3.0, 34.0, -118.0],
    [5.5, 30, 6.0, 1.1, 800, 2.8, 36.5, -120.1],
    [1.9, 45, 4.2, 1.0, 2500, 3.5, 33.9, -117.9],
]


@pytest.fixture
def app(model_dir, tmp_path):
    return build_app(ServeSettings(model_dir=model_dir, inference_log_dir=tmp_path / "log"))


async def _concurrently(app, bodies: list[dict]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        path = f"/v1/models/{app.router.name}:predict"
        return await asyncio.gather(*(client.post(path, json=body) for body in bodies))


def test_concurrent_requests_share_calls_and_get_their_own_answers(app):
    champion = app.router.champion
    bodies = [{"instances": [ROWS[i % 4]] * (1 + i % 3)} for i in range(12)]
    alone = [champion.predict(np.array(body["instances"], np.float64)) for body in bodies]
    calls_before = champion.batcher.calls
    responses = asyncio.run(_concurrently(app, bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies)
    for response, own in zip(responses, alone, strict=True):
        # Bit for bit: orjson writes each float32 with its shortest exact representation.
        np.testing.assert_array_equal(np.array(response.json()["predictions"], np.float32), own)
    assert champion.batcher.requests >= len(bodies)
    assert champion.batcher.calls - calls_before < len(bodies)  # fewer model calls than requests


def test_a_failing_shared_call_is_retried_one_by_one(app, monkeypatch):
    champion = app.router.champion
    real = champion.predict

    def fails_on_one_row(X):
        if (X[:, 0] == 1.9).any():
            raise RuntimeError("this row breaks the model")
        return real(X)

    monkeypatch.setattr(champion, "predict", fails_on_one_row)
    responses = asyncio.run(_concurrently(app, [{"instances": [row]} for row in ROWS]))
    assert [r.status_code for r in responses] == [200, 200, 200, 500]
    assert responses[3].json() == {"error": "inference failed: RuntimeError"}
    np.testing.assert_array_equal(
        np.array(responses[0].json()["predictions"], np.float32), real(np.array([ROWS[0]]))
    )


def test_batches_stop_at_max_rows():
    calls = []

    def predict(X):
        calls.append(len(X))
        return X[:, 0].astype(np.float32)

    batcher = Batcher(lambda: predict, max_rows=5)

    async def run():
        sizes = [2, 2, 2, 7, 1]
        return await asyncio.gather(*(batcher.predict(np.full((n, 1), float(n))) for n in sizes))

    results = asyncio.run(run())
    assert calls == [4, 2, 7, 1]  # 2+2 | 2 (a third 2 would pass 5) | 7 alone | 1
    assert [r.tolist() for r in results] == [[2.0] * 2, [2.0] * 2, [2.0] * 2, [7.0] * 7, [1.0]]
    assert (batcher.requests, batcher.calls) == (5, 4)


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


def test_writes_of_one_loop_iteration_leave_together_and_close_sends_them_first():
    async def scenario():
        loop = asyncio.get_running_loop()
        real = RecordingTransport()
        transport = OneWriteTransport(real, loop)  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert real.writes == []  # held until the end of this iteration
        assert transport.get_write_buffer_size() == 40  # held bytes count as buffered (flow control)
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        transport.write(b"last")
        transport.close()
        assert (real.writes[-1], real.closed) == (b"last", True)
        gone = RecordingTransport()
        dropped = OneWriteTransport(gone, loop)  # type: ignore[arg-type]
        dropped.write(b"late")
        gone.closed = True  # the peer went away before the end of the iteration
        await asyncio.sleep(0)
        assert gone.writes == []

    asyncio.run(scenario())
