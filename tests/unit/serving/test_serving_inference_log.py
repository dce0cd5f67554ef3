"""The inference log writer (bounded queue, background thread, rotation) and its readers."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from housing.inference_log import InferenceLogWriter, iter_records, log_files, read_records

NAMES = ("a", "b")


def log_batch(writer: InferenceLogWriter, request_id: str, rows: int = 2, **extra) -> bool:
    X = np.arange(rows * 2, dtype=np.float64).reshape(rows, 2)
    predictions = np.linspace(1, 2, rows, dtype=np.float32)
    return writer.log_predictions(
        ts=1.5,
        request_id=request_id,
        model="m",
        model_version="sha-1",
        variant="champion",
        feature_names=NAMES,
        features=X,
        predictions=predictions,
        latency_s=0.001,
        **extra,
    )


def test_records_follow_the_contract(tmp_path):
    writer = InferenceLogWriter(tmp_path, flush_interval=0.01)
    writer.start()
    log_batch(writer, "r1")
    log_batch(writer, "r2", rows=1, shadow=True)
    writer.log_feedback(ts=2.0, request_id="r1", actuals=[1.0, 2.5])
    writer.log_error(
        ts=3.0, request_id="r3", variant="champion", model_version="sha-1", reason="out_of_range"
    )
    writer.close()
    records = read_records(tmp_path)
    assert [r["kind"] for r in records] == ["prediction"] * 3 + ["feedback"] * 2 + ["error"]
    assert records[1] == {
        "kind": "prediction",
        "ts": 1.5,
        "request_id": "r1",
        "instance": 1,
        "model": "m",
        "model_version": "sha-1",
        "variant": "champion",
        "features": {"a": 2.0, "b": 3.0},
        "prediction": 2.0,
        "latency_s": 0.001,
    }
    assert "shadow" not in records[0]
    assert records[2]["shadow"] is True
    assert records[4] == {"kind": "feedback", "ts": 2.0, "request_id": "r1", "instance": 1, "actual": 2.5}
    assert records[5]["reason"] == "out_of_range"
    assert [r["request_id"] for r in read_records(tmp_path, kind="feedback")] == ["r1", "r1"]
    with pytest.raises(ValueError, match="kind must be one of"):
        read_records(tmp_path, kind="nope")


def test_background_thread_flushes_without_close(tmp_path):
    writer = InferenceLogWriter(tmp_path, flush_interval=0.02)
    writer.start()
    log_batch(writer, "r1")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(read_records(tmp_path)) < 2:
        time.sleep(0.02)
    assert len(read_records(tmp_path)) == 2
    writer.close()


def test_rotation_by_size_and_pruning(tmp_path):
    writer = InferenceLogWriter(tmp_path, max_bytes=1024, max_files=3, flush_interval=0.01)
    writer.start()
    for i in range(40):  # ~250 bytes per row, 2 rows per request: ~20 KB in ~1 KB files
        log_batch(writer, f"r{i:03d}")
    writer.close()
    files = log_files(tmp_path)
    assert len(files) == 3  # older files pruned
    for file in files:
        assert file.name.startswith("inference-")
        assert file.name.endswith(".jsonl")
        assert file.stat().st_size < 1024 + 600  # rotated right after crossing the limit
    ids = [r["request_id"] for r in iter_records(tmp_path)]
    assert ids == sorted(ids)
    assert ids[-1] == "r039"


def test_rotation_by_age(tmp_path):
    writer = InferenceLogWriter(tmp_path, rotate_seconds=0.05, flush_interval=0.01)
    writer.start()
    log_batch(writer, "r1")
    time.sleep(0.3)
    log_batch(writer, "r2")
    writer.close()
    assert len(log_files(tmp_path)) == 2


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    dropped = []
    writer = InferenceLogWriter(tmp_path, max_pending_rows=3, on_drop=dropped.append)
    # Not started: nothing drains, so the queue fills up.
    assert log_batch(writer, "r1", rows=2)
    assert not log_batch(writer, "r2", rows=2)
    assert writer.log_error(ts=1.0, request_id="r3", variant="champion", model_version="v", reason="injected")
    assert not writer.log_feedback(ts=1.0, request_id="r1", actuals=[1.0])
    assert dropped == [2, 1]
    assert writer.dropped_rows == 3
    assert writer.pending_rows == 3
    writer.close()  # never started: writes what was queued
    assert [r["request_id"] for r in read_records(tmp_path)] == ["r1", "r1", "r3"]


def test_close_drains_everything_queued(tmp_path):
    writer = InferenceLogWriter(tmp_path, flush_interval=60)  # the thread would not wake up on its own
    writer.start()
    for i in range(500):
        log_batch(writer, f"r{i}")
    writer.close()
    assert len(read_records(tmp_path)) == 1000
    assert not log_batch(writer, "late")  # closed: dropped and counted
    assert writer.dropped_rows == 2


def test_write_errors_are_counted_and_the_thread_survives(tmp_path):
    dropped = []
    target = tmp_path / "log"
    writer = InferenceLogWriter(target, flush_interval=0.01, on_drop=dropped.append)
    writer.start()
    target.rmdir()
    target.write_text("not a directory")  # opening a log file inside it now fails
    log_batch(writer, "r1")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not dropped:
        time.sleep(0.02)
    assert dropped == [2]
    target.unlink()
    log_batch(writer, "r2")
    writer.close()
    assert [r["request_id"] for r in read_records(target)] == ["r2", "r2"]


def test_readers_skip_a_torn_last_line(tmp_path):
    path = tmp_path / "inference-20250101T000000-000000.jsonl"
    good = {"kind": "prediction", "request_id": "r1"}
    path.write_text(json.dumps(good) + "\n" + '{"kind": "predic')
    assert read_records(path) == [good]
    assert read_records(tmp_path) == [good]


def test_restart_in_the_same_second_never_reuses_a_file(tmp_path):
    for request_id in ("first", "second"):
        writer = InferenceLogWriter(tmp_path)
        writer.start()
        log_batch(writer, request_id, rows=1)
        writer.close()
    assert len(log_files(tmp_path)) == 2
    assert [r["request_id"] for r in read_records(tmp_path)] == ["first", "second"]
