"""The inference log writer (bounded queue, background thread, rotation, faults) and its readers.

Faults are injected at the OS boundary the writer uses (``os.open``, ``write``, ``fsync``, ``close`` and
``ftruncate``, looked up through ``housing.inference_log.os``): a short write followed by ENOSPC is what the
kernel does when a volume fills mid-write. Real volumes (tmpfs filled, remounted read-only) are in
tests/integration/serving/test_serving_log_faults.py. Every fault test checks the books exactly: once the
writer is closed, rows offered == rows written + rows dropped, and the readers find exactly the written rows.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections import Counter

import numpy as np
import pytest

from housing import inference_log
from housing.inference_log import InferenceLogWriter, ReadStats, iter_records, log_files, read_records

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


def wait_until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def assert_exact_books(writer: InferenceLogWriter, directory) -> tuple[dict, list[dict], ReadStats]:
    """Closed writer: rows == written + dropped, nothing pending, and the readers find the written rows."""
    books = writer.accounting()
    stats = ReadStats()
    records = read_records(directory, stats=stats)
    assert books.pending == 0
    assert books.rows == books.written + sum(books.dropped.values())
    assert len(records) == books.written == stats.records
    return books.dropped, records, stats


class FaultyOS:
    """The ``os`` module as the writer sees it, with faults injected by function name.

    ``faults[name] = errno`` makes ``name`` fail; ``short_write = n`` makes the next failing ``write`` accept
    ``n`` bytes first (the next call then fails), as the kernel does when a volume fills mid-write. ``close``
    releases the descriptor before it reports its error, as the real one does.
    """

    def __init__(self) -> None:
        self.faults: dict[str, int] = {}
        self.short_write: int | None = None
        self.calls: Counter = Counter()
        self.lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(os, name)

    def _check(self, name: str) -> None:
        with self.lock:
            self.calls[name] += 1
            code = self.faults.get(name)
        if code is not None:
            raise OSError(code, os.strerror(code))

    def open(self, *args, **kwargs):
        self._check("open")
        return os.open(*args, **kwargs)

    def write(self, fd, data):
        if "write" in self.faults and self.short_write:
            count, self.short_write = self.short_write, None
            return os.write(fd, bytes(data[:count]))
        self._check("write")
        return os.write(fd, data)

    def fsync(self, fd):
        self._check("fsync")
        return os.fsync(fd)

    def ftruncate(self, fd, length):
        self._check("ftruncate")
        return os.ftruncate(fd, length)

    def close(self, fd):
        os.close(fd)
        self._check("close")


@pytest.fixture
def faulty(monkeypatch) -> FaultyOS:
    fake = FaultyOS()
    monkeypatch.setattr(inference_log, "os", fake)
    return fake


# --- records, rotation, queue ------------------------------------------------------------------------------


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
    assert writer.accounting().as_dict() == {
        "rows": 6,
        "written_rows": 6,
        "dropped_rows": {"queue_full": 0, "write_error": 0, "closed": 0},
        "pending_rows": 0,
        "healthy": True,
        "write_errors": {},
    }


def test_background_thread_flushes_without_close(tmp_path):
    writer = InferenceLogWriter(tmp_path, flush_interval=0.02)
    writer.start()
    log_batch(writer, "r1")
    wait_until(lambda: len(read_records(tmp_path)) == 2, timeout=5)
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
    writer = InferenceLogWriter(tmp_path, max_pending_rows=3)
    # Not started: nothing drains, so the queue fills up.
    assert log_batch(writer, "r1", rows=2)
    assert not log_batch(writer, "r2", rows=2)
    assert writer.log_error(ts=1.0, request_id="r3", variant="champion", model_version="v", reason="injected")
    assert not writer.log_feedback(ts=1.0, request_id="r1", actuals=[1.0])
    assert writer.dropped_rows == 3
    assert writer.pending_rows == 3
    writer.close()  # never started: writes what was queued
    dropped, records, _ = assert_exact_books(writer, tmp_path)
    assert dropped == {"queue_full": 3, "write_error": 0, "closed": 0}
    assert [r["request_id"] for r in records] == ["r1", "r1", "r3"]


def test_close_drains_everything_queued_and_counts_later_rows_as_closed(tmp_path):
    writer = InferenceLogWriter(tmp_path, flush_interval=60)  # the thread would not wake up on its own
    writer.start()
    for i in range(500):
        log_batch(writer, f"r{i}")
    writer.close()
    assert len(read_records(tmp_path)) == 1000
    assert not log_batch(writer, "late")  # closed: dropped and counted
    dropped, _, _ = assert_exact_books(writer, tmp_path)
    assert dropped == {"queue_full": 0, "write_error": 0, "closed": 2}


def test_restart_in_the_same_second_never_reuses_a_file(tmp_path):
    for request_id in ("first", "second"):
        writer = InferenceLogWriter(tmp_path)
        writer.start()
        log_batch(writer, request_id, rows=1)
        writer.close()
    assert len(log_files(tmp_path)) == 2
    assert [r["request_id"] for r in read_records(tmp_path)] == ["first", "second"]


# --- faults: every row written or counted, and writing resumes ---------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_a_write_cut_short_then_failing_keeps_the_rows_and_resumes(tmp_path, faulty, code):
    """The volume fills (or errs) in the middle of a line; later it recovers: every row is written once."""
    writer = InferenceLogWriter(tmp_path, flush_interval=0.01)
    writer.start()
    log_batch(writer, "before", rows=3)
    wait_until(lambda: writer.pending_rows == 0)
    faulty.faults["write"], faulty.short_write = code, 300  # one whole line (~260 bytes) and part of the next
    for i in range(5):
        log_batch(writer, f"during-{i}", rows=2)
    wait_until(lambda: faulty.calls["write"] >= 3)  # failed and retried
    assert not writer.healthy
    books = writer.accounting()
    assert books.written == 4  # the 3 rows before, and the one line that reached the file whole
    assert books.pending == 9
    assert books.write_errors[errno.errorcode[code]] >= 2
    faulty.faults.clear()
    wait_until(lambda: writer.pending_rows == 0)
    assert writer.healthy
    writer.close()
    dropped, records, stats = assert_exact_books(writer, tmp_path)
    assert dropped == {"queue_full": 0, "write_error": 0, "closed": 0}
    assert stats.skipped == 0  # the part of a line was truncated away
    ids = [(r["request_id"], r["instance"]) for r in records]
    assert len(ids) == len(set(ids)) == 13  # each row exactly once, none lost
    assert len(log_files(tmp_path)) == 2  # the file the failure abandoned, and the one after it


def test_an_unwritable_directory_holds_the_rows_until_it_is_fixed(tmp_path, faulty):
    """EACCES when opening a file (and an empty file per failed attempt is never left behind)."""
    faulty.faults["open"] = errno.EACCES
    writer = InferenceLogWriter(tmp_path, flush_interval=0.01)
    writer.start()
    log_batch(writer, "r1")
    wait_until(lambda: faulty.calls["open"] >= 3)
    assert writer.accounting().write_errors == {"EACCES": faulty.calls["open"]}
    assert writer.pending_rows == 2
    faulty.faults.clear()
    wait_until(lambda: writer.pending_rows == 0)
    writer.close()
    dropped, records, _ = assert_exact_books(writer, tmp_path)
    assert sum(dropped.values()) == 0
    assert [r["request_id"] for r in records] == ["r1", "r1"]


def test_failed_attempts_leave_no_empty_files(tmp_path, faulty):
    """A full volume still lets files be created: the empty file of each failed attempt is removed."""
    faulty.faults["write"] = errno.ENOSPC
    writer = InferenceLogWriter(tmp_path, flush_interval=0.01)
    writer.start()
    log_batch(writer, "r1")
    wait_until(lambda: faulty.calls["write"] >= 4)
    assert log_files(tmp_path) == []
    faulty.faults.clear()
    writer.close()
    assert_exact_books(writer, tmp_path)
    assert len(log_files(tmp_path)) == 1


@pytest.mark.parametrize("failing", ["fsync", "close"])
def test_errors_on_rotation_and_close_never_end_the_writer(tmp_path, faulty, failing):
    """The issue's crash: closing the file raised ENOSPC again inside the error handler."""
    faulty.faults[failing] = errno.ENOSPC
    writer = InferenceLogWriter(tmp_path, max_bytes=1024, flush_interval=0.01)
    writer.start()
    for i in range(10):  # ~5 KB: several rotations, each failing
        log_batch(writer, f"r{i}")
    wait_until(lambda: writer.pending_rows == 0)
    assert writer._thread.is_alive()
    assert writer.accounting().write_errors["ENOSPC"] >= 2
    faulty.faults.clear()
    log_batch(writer, "after")
    writer.close()
    dropped, records, _ = assert_exact_books(writer, tmp_path)
    assert sum(dropped.values()) == 0
    assert len(records) == 22  # rows already in a file stay counted: the kernel accepted them


def test_a_torn_line_that_cannot_be_truncated_is_not_counted_and_readers_skip_it(tmp_path, faulty):
    """A read-only remount can refuse the truncation too: the fragment stays, the row is retried elsewhere."""
    faulty.faults.update({"write": errno.EROFS, "ftruncate": errno.EROFS})
    faulty.short_write = 100  # part of the first line
    writer = InferenceLogWriter(tmp_path, flush_interval=0.01)
    writer.start()
    log_batch(writer, "r1")
    wait_until(lambda: faulty.calls["write"] >= 2)
    faulty.faults.clear()
    writer.close()
    dropped, records, stats = assert_exact_books(writer, tmp_path)
    assert sum(dropped.values()) == 0
    assert (stats.skipped, stats.torn) == (1, 1)
    assert [(r["request_id"], r["instance"]) for r in records] == [("r1", 0), ("r1", 1)]


def test_a_line_missing_only_its_newline_is_a_written_record(tmp_path, faulty):
    writer = InferenceLogWriter(tmp_path, flush_interval=0.01)
    first_line = len(InferenceLogWriter._format(_one_row_item("r1"))[0])
    faulty.faults.update({"write": errno.ENOSPC, "ftruncate": errno.ENOSPC})
    faulty.short_write = first_line - 1
    writer.start()
    log_batch(writer, "r1", rows=1)
    wait_until(lambda: faulty.calls["write"] >= 1 and writer.pending_rows == 0)
    assert writer.accounting().written == 1  # readers take that line: it is counted, not retried
    assert faulty.calls["write"] == 1
    faulty.faults.clear()
    writer.close()
    _, records, stats = assert_exact_books(writer, tmp_path)
    assert stats.skipped == 0
    assert [r["request_id"] for r in records] == ["r1"]


def _one_row_item(request_id: str) -> tuple:
    X = np.arange(2, dtype=np.float64).reshape(1, 2)
    predictions = np.linspace(1, 2, 1, dtype=np.float32)
    return ("prediction", 1.5, request_id, "m", "sha-1", "champion", NAMES, X, predictions, 0.001, False)


def test_a_volume_still_failing_at_close_counts_the_backlog_as_write_error(tmp_path, faulty):
    faulty.faults["open"] = errno.EROFS
    writer = InferenceLogWriter(tmp_path, flush_interval=0.01)
    writer.start()
    for i in range(3):
        log_batch(writer, f"r{i}")
    started = time.monotonic()
    writer.close(timeout=1.0)  # retries for half of it, then gives up
    assert time.monotonic() - started < 1.0
    dropped, records, _ = assert_exact_books(writer, tmp_path)
    assert dropped == {"queue_full": 0, "write_error": 6, "closed": 0}
    assert records == []


def test_a_full_backlog_while_failing_drops_new_rows_as_queue_full_and_memory_stays_bounded(tmp_path, faulty):
    faulty.faults["write"] = errno.ENOSPC
    writer = InferenceLogWriter(tmp_path, max_pending_rows=10, flush_interval=0.01)
    writer.start()
    accepted = sum(log_batch(writer, f"r{i}") for i in range(20))
    assert accepted == 5
    assert writer.pending_rows == 10
    faulty.faults.clear()
    writer.close()
    dropped, records, _ = assert_exact_books(writer, tmp_path)
    assert dropped == {"queue_full": 30, "write_error": 0, "closed": 0}
    assert len(records) == 10


def test_backoff_grows_to_its_cap(tmp_path, faulty, monkeypatch):
    monkeypatch.setattr(inference_log, "RETRY_MAX_SECONDS", 0.08)
    faulty.faults["open"] = errno.EIO
    writer = InferenceLogWriter(tmp_path, flush_interval=0.01)
    writer.start()
    log_batch(writer, "r1")
    time.sleep(1.0)
    attempts = faulty.calls["open"]
    # 0.01, 0.02, 0.04 then every 0.08 s: ~14 attempts in a second, not ~100 (one per flush interval)
    assert 6 <= attempts <= 20, attempts
    faulty.faults.clear()
    writer.close()
    assert_exact_books(writer, tmp_path)


def test_an_unexpected_exception_is_retried_and_logged_once(tmp_path, faulty, caplog, monkeypatch):
    calls = Counter()

    def broken_write(fd, data):
        calls["write"] += 1
        if calls["write"] <= 3:
            raise RuntimeError("a bug, not the volume")
        return os.write(fd, data)

    monkeypatch.setattr(faulty, "write", broken_write)
    writer = InferenceLogWriter(tmp_path, flush_interval=0.01)
    with caplog.at_level(logging.DEBUG, logger="housing.inference_log"):
        writer.start()
        log_batch(writer, "r1")
        wait_until(lambda: writer.pending_rows == 0)
        writer.close()
    assert writer.accounting().write_errors == {"other": 3}
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1  # once per outage, with the traceback
    assert failures[0].exc_info is not None
    assert any(r.getMessage() == "inference log writing resumed" for r in caplog.records)
    assert_exact_books(writer, tmp_path)


def test_a_record_that_cannot_be_formatted_is_dropped_as_write_error(tmp_path):
    writer = InferenceLogWriter(tmp_path, flush_interval=0.01)
    writer.start()
    writer.log_feedback(ts=1.0, request_id="r1", actuals=[object()])  # not JSON: a bug upstream
    log_batch(writer, "r2")
    writer.close()
    dropped, records, _ = assert_exact_books(writer, tmp_path)
    assert dropped["write_error"] == 1
    assert [r["request_id"] for r in records] == ["r2", "r2"]


def test_a_directory_that_turns_into_a_file_and_back(tmp_path):
    """No injection: the log directory is replaced by a file, so it cannot be created (EEXIST)."""
    target = tmp_path / "log"
    writer = InferenceLogWriter(target, flush_interval=0.01, rotate_seconds=0.01)
    writer.start()
    target.rmdir()
    target.write_text("not a directory")
    log_batch(writer, "r1")
    wait_until(lambda: not writer.healthy)
    assert "EEXIST" in writer.accounting().write_errors
    target.unlink()
    wait_until(lambda: writer.pending_rows == 0)
    log_batch(writer, "r2")
    writer.close()
    dropped, records, _ = assert_exact_books(writer, target)
    assert sum(dropped.values()) == 0
    assert [r["request_id"] for r in records] == ["r1", "r1", "r2", "r2"]


# --- readers -----------------------------------------------------------------------------------------------


def test_readers_skip_and_count_a_torn_last_line_wherever_the_write_stopped(tmp_path):
    """Cut a real log file at every byte of its last line: the whole lines are read, the rest is one torn
    line (or, cut right before the newline, one more record)."""
    source = tmp_path / "source"
    writer = InferenceLogWriter(source)
    log_batch(writer, "r1", rows=3)
    writer.close()
    (path,) = log_files(source)
    data = path.read_bytes()
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    cut_dir = tmp_path / "cut"
    cut_dir.mkdir()
    for cut in range(last_start, len(data) + 1):
        cut_file = cut_dir / path.name
        cut_file.write_bytes(data[:cut])
        stats = ReadStats()
        records = read_records(cut_dir, stats=stats)
        whole = cut >= len(data) - 1  # every byte of the JSON object is there
        assert len(records) == (3 if whole else 2), cut
        assert (stats.skipped, stats.torn) == ((0, 0) if whole or cut == last_start else (1, 1)), cut
        assert stats.records == len(records)


def test_readers_count_invalid_lines_in_the_middle_and_warn_once(tmp_path, caplog):
    path = tmp_path / "inference-20250101T000000-000000.jsonl"
    good = {"kind": "prediction", "request_id": "r1"}
    path.write_text(
        json.dumps(good) + "\n" + "garbage\n" + "[1, 2]\n" + json.dumps(good) + "\n" + '{"kind": "pr'
    )
    stats = ReadStats()
    with caplog.at_level(logging.WARNING, logger="housing.inference_log"):
        assert read_records(tmp_path, stats=stats) == [good, good]
    assert (stats.records, stats.skipped, stats.torn) == (2, 3, 1)
    assert stats.examples == [f"{path}:2", f"{path}:3", f"{path}:5"]
    (warning,) = caplog.records
    assert "skipped 3 line(s)" in warning.getMessage()
    assert "1 torn" in warning.getMessage()
    assert read_records(path) == [good, good]  # a file alone reads the same
