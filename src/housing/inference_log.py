"""The inference log: every served prediction (and fed-back ground truth) as rotated JSONL files.

Written by the model server off the request path, read by the drift stage, ``housing simulate`` and the A/B
analysis as a production window. Standard library only (orjson is used when present, for speed).

File layout: ``<dir>/inference-<UTC yyyymmddTHHMMSS>-<seq>.jsonl``; names sort in time order. One JSON object
per line with a ``kind`` of ``prediction``, ``feedback`` or ``error`` (see docs/serving.md for the fields).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:  # a base dependency of the package; the module still works without it
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is missing
    orjson = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

FILE_PREFIX = "inference-"
FILE_SUFFIX = ".jsonl"
KINDS = ("prediction", "feedback", "error")
PREDICTION_DECIMALS = 6  # predictions are float32: more digits are noise


def _dumps(record: dict[str, Any]) -> bytes:
    if orjson is not None:
        return orjson.dumps(record) + b"\n"
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


def log_files(directory: Path) -> list[Path]:
    """The log files of a directory, oldest first (their names sort in time order)."""
    return sorted(p for p in directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}") if p.is_file())


def iter_records(path: Path | str, kind: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the records of one log file, or of every log file in a directory in time order.

    A line that is not valid JSON (a file cut short by a crash) is skipped with a warning.
    """
    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    files = log_files(path) if path.is_dir() else [path]
    for file in files:
        with file.open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    log.warning("%s:%d: skipping a line that is not valid JSON", file, number)
                    continue
                if kind is None or record.get("kind") == kind:
                    yield record


def read_records(path: Path | str, kind: str | None = None) -> list[dict[str, Any]]:
    """All records of a log file or directory (optionally one ``kind``), in time order."""
    return list(iter_records(path, kind))


class InferenceLogWriter:
    """Append-only JSONL log written by a background thread.

    The request path only appends a tuple to a bounded in-memory queue (no I/O, no serialisation); when the
    queue holds ``max_pending_rows`` rows the batch is dropped and counted (``on_drop``) instead of blocking.
    The thread formats and writes every ``flush_interval`` seconds, rotates files by size and age, keeps at
    most ``max_files`` files, and drains the queue on :meth:`close`.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        rotate_seconds: float = 3600.0,
        max_files: int = 100,
        max_pending_rows: int = 100_000,
        flush_interval: float = 0.2,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        if max_bytes <= 0 or rotate_seconds <= 0 or max_pending_rows <= 0 or flush_interval <= 0:
            raise ValueError("inference log limits must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.rotate_seconds = rotate_seconds
        self.max_files = max_files
        self.max_pending_rows = max_pending_rows
        self.flush_interval = flush_interval
        self._on_drop = on_drop
        self._queue: deque[tuple] = deque()
        # Each counter has a single writer thread, so no lock is needed: pending = enqueued - written.
        self._enqueued_rows = 0
        self._written_rows = 0
        self._dropped_rows = 0  # queue full (producer thread)
        self._lost_rows = 0  # write failures (writer thread)
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._file = None
        self._file_path: Path | None = None
        self._file_opened = 0.0
        self._file_bytes = 0
        self._seq = 0

    # --- producer side (the event loop) ----------------------------------------------------------------

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    @property
    def dropped_rows(self) -> int:
        """Rows never written: dropped because the queue was full, or lost to a write error."""
        return self._dropped_rows + self._lost_rows

    @property
    def pending_rows(self) -> int:
        return self._enqueued_rows - self._written_rows

    def _offer(self, item: tuple, rows: int) -> bool:
        if self._stopping or self.pending_rows + rows > self.max_pending_rows:
            self._dropped_rows += rows
            if self._on_drop is not None:
                self._on_drop(rows)
            return False
        self._enqueued_rows += rows
        self._queue.append(item)
        return True

    def log_predictions(
        self,
        *,
        ts: float,
        request_id: str,
        model: str,
        model_version: str,
        variant: str,
        feature_names: Sequence[str],
        features: Any,
        predictions: Any,
        latency_s: float,
        shadow: bool = False,
    ) -> bool:
        """Queue one request's predictions. ``features``/``predictions``: numpy arrays or nested lists."""
        item = (
            "prediction",
            ts,
            request_id,
            model,
            model_version,
            variant,
            feature_names,
            features,
            predictions,
            latency_s,
            shadow,
        )
        return self._offer(item, len(predictions))

    def log_feedback(self, *, ts: float, request_id: str, actuals: Sequence[float]) -> bool:
        return self._offer(("feedback", ts, request_id, list(actuals)), len(actuals))

    def log_error(self, *, ts: float, request_id: str, variant: str, model_version: str, reason: str) -> bool:
        return self._offer(("error", ts, request_id, variant, model_version, reason), 1)

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting records, write everything queued, flush and close the file."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("inference log thread did not finish within %.1f s", timeout)
            self._thread = None
        else:  # never started: write what was queued synchronously
            self._drain()
            self._close_file()

    # --- consumer side (the background thread) ---------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            self._safe_drain()
        self._safe_drain()
        self._close_file()

    def _safe_drain(self) -> None:
        try:
            self._drain()
        except Exception:  # a full disk must not kill the thread; the records are lost and counted
            log.exception("inference log write failed")
            lost = self.pending_rows
            self._queue.clear()
            self._written_rows = self._enqueued_rows
            if lost:
                self._lost_rows += lost
                if self._on_drop is not None:
                    self._on_drop(lost)
            self._close_file()

    def _drain(self) -> None:
        wrote = False
        while self._queue:
            item = self._queue.popleft()
            lines, rows = self._format(item)
            self._write(lines)
            self._written_rows += rows
            wrote = True
        if wrote and self._file is not None:
            self._file.flush()
        if self._file is not None and time.time() - self._file_opened >= self.rotate_seconds:
            self._close_file()

    @staticmethod
    def _format(item: tuple) -> tuple[bytes, int]:
        kind = item[0]
        if kind == "prediction":
            _, ts, request_id, model, version, variant, names, features, predictions, latency_s, shadow = item
            rows = features.tolist() if hasattr(features, "tolist") else features
            values = predictions.tolist() if hasattr(predictions, "tolist") else predictions
            lines = []
            for index, (row, value) in enumerate(zip(rows, values, strict=True)):
                record = {
                    "kind": "prediction",
                    "ts": ts,
                    "request_id": request_id,
                    "instance": index,
                    "model": model,
                    "model_version": version,
                    "variant": variant,
                    "features": dict(zip(names, row, strict=True)),
                    "prediction": round(float(value), PREDICTION_DECIMALS),
                    "latency_s": latency_s,
                }
                if shadow:
                    record["shadow"] = True
                lines.append(_dumps(record))
            return b"".join(lines), len(lines)
        if kind == "feedback":
            _, ts, request_id, actuals = item
            lines = [
                _dumps({"kind": "feedback", "ts": ts, "request_id": request_id, "instance": i, "actual": a})
                for i, a in enumerate(actuals)
            ]
            return b"".join(lines), len(lines)
        _, ts, request_id, variant, version, reason = item
        record = {
            "kind": "error",
            "ts": ts,
            "request_id": request_id,
            "variant": variant,
            "model_version": version,
            "reason": reason,
        }
        return _dumps(record), 1

    def _write(self, payload: bytes) -> None:
        if self._file is None:
            self._open_file()
        assert self._file is not None
        self._file.write(payload)
        self._file_bytes += len(payload)
        if self._file_bytes >= self.max_bytes:
            self._close_file()

    def _open_file(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        while True:  # a restart within the same second must not append to (or clobber) a file
            path = self.directory / f"{FILE_PREFIX}{stamp}-{self._seq:06d}{FILE_SUFFIX}"
            self._seq += 1
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                continue
            break
        self._file = os.fdopen(fd, "ab", buffering=1 << 16)
        self._file_path = path
        self._file_opened = time.time()
        self._file_bytes = 0
        self._prune()

    def _close_file(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
            self._file = None

    def _prune(self) -> None:
        if self.max_files <= 0:
            return
        files = log_files(self.directory)
        for old in files[: max(0, len(files) - self.max_files)]:
            if old != self._file_path:
                old.unlink(missing_ok=True)
