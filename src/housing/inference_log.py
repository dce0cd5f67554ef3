"""The inference log: every served prediction (and fed-back ground truth) as rotated JSONL files.

Written by the model server off the request path, read by the drift stage, ``housing simulate`` and the A/B
analysis as a production window. Standard library only (orjson is used when present, for speed).

File layout: ``<dir>/inference-<UTC yyyymmddTHHMMSS>-<seq>.jsonl``; names sort in time order. One JSON object
per line with a ``kind`` of ``prediction``, ``feedback`` or ``error`` (see docs/serving.md for the fields).

Accounting: every row offered to the writer is either written (a whole line, newline included, accepted by
the kernel's ``write``), dropped and counted by :class:`DropReason`, or still pending; so once the writer is
closed, ``rows = written + dropped`` exactly. An I/O error (full or read-only volume, EIO, EACCES) never ends
the writer: the rows stay queued, the writer retries with backoff and resumes when the volume recovers.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
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
RETRY_MAX_SECONDS = 5.0  # backoff cap while the volume fails: a recovery is noticed within this
BATCH_BYTES = 256 * 1024  # formatted bytes handed to one write() (at most; a file's room may cut it shorter)
EXAMPLES_KEPT = 5  # skipped lines named in a reader's summary


class DropReason(StrEnum):
    """Why a row was not written (the ``reason`` label of ``model_inference_log_dropped_total``)."""

    QUEUE_FULL = "queue_full"  # the backlog already held max_pending_rows rows when it arrived
    WRITE_ERROR = "write_error"  # given up: still failing when the log closed (or the row would not format)
    CLOSED = "closed"  # offered after the log closed (shutdown); expected to stay 0


def _dumps(record: dict[str, Any]) -> bytes:
    if orjson is not None:
        return orjson.dumps(record) + b"\n"
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


def log_files(directory: Path) -> list[Path]:
    """The log files of a directory, oldest first (their names sort in time order)."""
    return sorted(p for p in directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}") if p.is_file())


# --- readers ----------------------------------------------------------------------------------------------


@dataclass
class ReadStats:
    """What the readers saw: records yielded and lines skipped (torn by a crash, or not a JSON object).

    A *torn* line is the last line of a file, without its newline, that does not parse: a write cut short
    (a process killed mid-write, a full volume). A complete JSON object whose newline is missing is a record.
    """

    records: int = 0
    skipped: int = 0
    torn: int = 0  # of the skipped lines, those torn at the end of a file
    examples: list[str] = field(default_factory=list)  # "file:line" of the first skipped lines

    def skip(self, file: Path, number: int, *, torn: bool) -> None:
        self.skipped += 1
        self.torn += torn
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(f"{file}:{number}")


def iter_records(
    path: Path | str, kind: str | None = None, stats: ReadStats | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records of one log file, or of every log file in a directory in time order.

    A line that is not a JSON object (a file cut short by a crash) is skipped, counted in ``stats`` and,
    once the files are read, summed up in one warning; it never stops the reader.
    """
    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    seen = ReadStats()
    files = log_files(path) if path.is_dir() else [path]
    for file in files:
        with file.open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if type(record) is not dict:
                    seen.skip(file, number, torn=not line.endswith(b"\n"))
                    continue
                seen.records += 1
                if kind is None or record.get("kind") == kind:
                    yield record
    if seen.skipped:
        log.warning(
            "%s: skipped %d line(s) that are not JSON records (%d torn at the end of a file), e.g. %s",
            path,
            seen.skipped,
            seen.torn,
            ", ".join(seen.examples),
        )
    if stats is not None:
        stats.records += seen.records
        stats.skipped += seen.skipped
        stats.torn += seen.torn
        stats.examples.extend(seen.examples[: EXAMPLES_KEPT - len(stats.examples)])


def read_records(
    path: Path | str, kind: str | None = None, stats: ReadStats | None = None
) -> list[dict[str, Any]]:
    """All records of a log file or directory (optionally one ``kind``), in time order."""
    return list(iter_records(path, kind, stats))


# --- the writer -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogAccounting:
    """A snapshot of the writer's books: ``rows == written + sum(dropped) + pending``."""

    rows: int  # every row offered (predictions, feedback and error records)
    written: int
    dropped: dict[str, int]  # by DropReason value
    pending: int
    healthy: bool  # the writer runs and its last attempt succeeded
    write_errors: dict[str, int]  # failed attempts by errno name (ENOSPC, EROFS, ...)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "written_rows": self.written,
            "dropped_rows": self.dropped,
            "pending_rows": self.pending,
            "healthy": self.healthy,
            "write_errors": self.write_errors,
        }


@dataclass
class _Batch:
    """Formatted lines on their way to the file: ``ends[i]`` is where line ``i`` ends (after its newline)."""

    payload: bytes
    ends: list[int]
    done: int = 0  # lines already accounted for (written, or dropped as write_error)

    def start(self, line: int) -> int:
        return self.ends[line - 1] if line else 0

    @property
    def rows(self) -> int:
        return len(self.ends) - self.done


def _error_name(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    return errno.errorcode.get(code, "other") if isinstance(code, int) else "other"


class InferenceLogWriter:
    """Append-only JSONL log written by a background thread.

    The request path only appends a tuple to a bounded in-memory queue (no I/O, no serialisation); when the
    backlog holds ``max_pending_rows`` rows a new batch is dropped and counted (``queue_full``) instead of
    blocking. The thread formats and writes every ``flush_interval`` seconds with ``os.write`` on a raw file
    descriptor (no user-space buffer, so it knows exactly which lines reached the file), rotates files by
    size and age and keeps at most ``max_files`` files.

    A failed open, write, fsync or close keeps the unwritten rows queued: the file is abandoned (a line cut
    short is truncated away when the volume allows it), and the writer retries with exponential backoff up to
    :data:`RETRY_MAX_SECONDS`, in a new file. :meth:`close` writes what is queued, retrying for half its
    timeout, and counts what is still unwritten then as ``write_error``.
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
    ) -> None:
        if max_bytes <= 0 or rotate_seconds <= 0 or max_pending_rows <= 0 or flush_interval <= 0:
            raise ValueError("inference log limits must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.rotate_seconds = rotate_seconds
        self.max_files = max_files
        self.max_pending_rows = max_pending_rows
        self.flush_interval = flush_interval
        self._queue: deque[tuple[int, tuple]] = deque()  # (rows, item)
        # Guards "closed?" + enqueue against the writer's final sweep; nothing else takes it.
        self._lock = threading.Lock()
        self._closed = False
        # Each counter has one writing thread: the producer (under the lock) or the writer thread.
        self._accepted_rows = 0
        self._dropped_queue_full = 0
        self._dropped_closed = 0
        self._written_rows = 0
        self._dropped_write_error = 0
        self._write_errors: dict[str, int] = {}
        self._failing_since: float | None = None  # monotonic time of the first failure of an outage
        self._failed_attempts = 0  # in the current outage
        self._retry_at = 0.0
        self._batch: _Batch | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._close_retry_seconds = 5.0
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._file_path: Path | None = None
        self._file_opened = 0.0
        self._file_bytes = 0
        self._seq = 0

    # --- producer side (the event loop) ----------------------------------------------------------------

    def start(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # serve anyway: the writer keeps the rows and retries
            log.error("inference log directory %s is not writable yet (%s)", self.directory, exc)
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        """Rows accepted and not yet written or given up (the backlog, in memory)."""
        return self._accepted_rows - self._written_rows - self._dropped_write_error

    @property
    def dropped_rows(self) -> int:
        return self._dropped_queue_full + self._dropped_write_error + self._dropped_closed

    @property
    def healthy(self) -> bool:
        running = self._thread is None or self._thread.is_alive() or self._closed
        return running and self._failing_since is None

    def accounting(self) -> LogAccounting:
        dropped = {
            DropReason.QUEUE_FULL.value: self._dropped_queue_full,
            DropReason.WRITE_ERROR.value: self._dropped_write_error,
            DropReason.CLOSED.value: self._dropped_closed,
        }
        written, pending = self._written_rows, self.pending_rows
        return LogAccounting(
            rows=written + pending + sum(dropped.values()),
            written=written,
            dropped=dropped,
            pending=pending,
            healthy=self.healthy,
            write_errors=dict(self._write_errors),
        )

    def _offer(self, item: tuple, rows: int) -> bool:
        with self._lock:
            if self._closed:
                self._dropped_closed += rows
                return False
            if self.pending_rows + rows > self.max_pending_rows:
                self._dropped_queue_full += rows
                return False
            self._accepted_rows += rows
            self._queue.append((rows, item))
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
        """Stop accepting rows, write what is queued (retrying for up to half of ``timeout`` while the volume
        fails; what is still unwritten then is dropped as ``write_error``) and close the file."""
        self._close_retry_seconds = timeout / 2
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("inference log thread did not finish within %.1f s", timeout)
        elif not self._closed:  # never started: finish in the caller's thread
            self._finish()

    # --- consumer side (the background thread) ---------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            if not self._stopping and time.monotonic() >= self._retry_at:
                self._attempt()
        self._finish()

    def _attempt(self) -> bool:
        """Write what is queued and rotate by age; on any error, schedule a retry. True when it all went."""
        try:
            self._drain()
            if self._fd is not None and time.time() - self._file_opened >= self.rotate_seconds:
                self._close_file()
        except Exception as exc:  # OSError from the volume, or a bug: neither may end the thread
            self._failed(exc)
            return False
        if self._failing_since is not None:
            log.warning(
                "inference log writing resumed",
                extra={
                    "outage_seconds": round(time.monotonic() - self._failing_since, 3),
                    "failed_attempts": self._failed_attempts,
                    "pending_rows": self.pending_rows,
                },
            )
            self._failing_since, self._failed_attempts = None, 0
        return True

    def _failed(self, exc: Exception) -> None:
        name = _error_name(exc)
        self._write_errors[name] = self._write_errors.get(name, 0) + 1
        self._failed_attempts += 1
        self._abandon_file()
        now = time.monotonic()
        delay = min(RETRY_MAX_SECONDS, self.flush_interval * 2 ** min(self._failed_attempts - 1, 16))
        self._retry_at = now + delay
        details = {"error": name, "pending_rows": self.pending_rows, "retry_in_seconds": round(delay, 3)}
        if self._failing_since is None:
            self._failing_since = now
            if isinstance(exc, OSError):
                log.error("inference log write failed (%s); rows stay queued, retrying", exc, extra=details)
            else:
                log.exception("inference log write failed; rows stay queued, retrying", extra=details)
        else:
            log.debug("inference log write failed again (%s)", exc, extra=details)

    def _finish(self) -> None:
        """Final phase: refuse new rows, write the backlog (retrying until the budget is spent), close."""
        with self._lock:
            self._closed = True  # from here on, offers are dropped as "closed"
        give_up = time.monotonic() + self._close_retry_seconds
        self._retry_at = 0.0  # one immediate attempt, whatever the backoff said
        while self.pending_rows:
            now = time.monotonic()
            if now >= self._retry_at and self._attempt():
                break
            if now >= give_up:
                break
            time.sleep(max(0.0, min(self._retry_at, give_up) - time.monotonic()))
        lost = self._give_up_backlog()
        try:
            self._close_file()
        except Exception as exc:
            self._failed(exc)
        if lost:
            log.error(
                "inference log closed with rows it could not write",
                extra={"write_error_rows": lost, **self.accounting().as_dict()},
            )

    def _give_up_backlog(self) -> int:
        lost = 0
        if self._batch is not None:
            lost += self._batch.rows
            self._batch = None
        while self._queue:
            lost += self._queue.popleft()[0]
        self._dropped_write_error += lost
        return lost

    def _drain(self) -> None:
        while True:
            if self._batch is None:
                self._batch = self._next_batch()
                if self._batch is None:
                    return
            if self._batch.rows:  # a failure may have accounted for every line already
                self._write_batch(self._batch)
            self._batch = None
            if self._file_bytes >= self.max_bytes:
                self._close_file()

    def _next_batch(self) -> _Batch | None:
        """Format queued items into lines, up to the current file's room (one item at least)."""
        room = min(BATCH_BYTES, max(1, self.max_bytes - self._file_bytes))
        chunks: list[bytes] = []
        ends: list[int] = []
        size = 0
        while self._queue and size < room:
            rows, item = self._queue.popleft()
            try:
                lines = self._format(item)
            except Exception:  # a bug in a record, not the volume: retrying cannot help
                log.exception("inference log record could not be formatted", extra={"rows": rows})
                self._dropped_write_error += rows
                continue
            for line in lines:
                chunks.append(line)
                size += len(line)
                ends.append(size)
        return _Batch(b"".join(chunks), ends) if ends else None

    def _write_batch(self, batch: _Batch) -> None:
        if self._fd is None:
            self._open_file()
        assert self._fd is not None
        start = batch.start(batch.done)
        view = memoryview(batch.payload)[start:]
        sent = 0
        try:
            while sent < len(view):
                count = os.write(self._fd, view[sent:])
                if count <= 0:  # a regular file never does this; do not spin on it
                    raise OSError(errno.EIO, "write() accepted no bytes")
                sent += count
        finally:
            self._account(batch, start, sent)

    def _account(self, batch: _Batch, start: int, sent: int) -> None:
        """Count the lines that reached the file whole; cut a partial line off (or keep it, when intact)."""
        reached = start + sent
        done = batch.done
        while done < len(batch.ends) and batch.ends[done] <= reached:
            done += 1
        self._written_rows += done - batch.done
        batch.done = done
        partial = reached - batch.start(done)
        self._file_bytes += sent
        if not partial:
            return
        # A write cut short inside a line: cut it off, so the file ends with a whole line.
        try:
            os.ftruncate(self._fd, self._file_bytes - partial)  # type: ignore[arg-type]
            self._file_bytes -= partial
        except OSError:  # the torn bytes stay (readers skip them); the failure abandons the file anyway
            if batch.ends[done] - 1 == reached:  # only its newline is missing: readers take the record
                batch.done += 1
                self._written_rows += 1

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
        self._fd, self._file_path = fd, path
        self._file_opened = time.time()
        self._file_bytes = 0
        self._prune()

    def _close_file(self) -> None:
        """Rotate: fsync and close. An error leaves the file closed all the same (and is raised)."""
        fd = self._fd
        if fd is None:
            return
        self._fd = None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _abandon_file(self) -> None:
        """After a failure: close without raising; an empty file goes (each retry would leave one)."""
        fd, path, size = self._fd, self._file_path, self._file_bytes
        self._fd = None
        if fd is None:
            return
        with contextlib.suppress(OSError):  # the descriptor is released even when close reports an error
            os.close(fd)
        if size == 0 and path is not None:
            with contextlib.suppress(OSError):  # a read-only volume keeps it; readers skip empty files
                path.unlink()

    def _prune(self) -> None:
        if self.max_files <= 0:
            return
        try:
            files = log_files(self.directory)
            for old in files[: max(0, len(files) - self.max_files)]:
                if old != self._file_path:
                    old.unlink(missing_ok=True)
        except OSError as exc:  # more files than wanted is better than not writing
            log.warning("inference log could not delete old files (%s)", exc)

    @staticmethod
    def _format(item: tuple) -> list[bytes]:
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
            return lines
        if kind == "feedback":
            _, ts, request_id, actuals = item
            return [
                _dumps({"kind": "feedback", "ts": ts, "request_id": request_id, "instance": i, "actual": a})
                for i, a in enumerate(actuals)
            ]
        _, ts, request_id, variant, version, reason = item
        record = {
            "kind": "error",
            "ts": ts,
            "request_id": request_id,
            "variant": variant,
            "model_version": version,
            "reason": reason,
        }
        return [_dumps(record)]
