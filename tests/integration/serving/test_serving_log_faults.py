"""The inference log of a real `housing serve` under real faults, with exact books for each.

A tmpfs that fills up and later grows (ENOSPC, short writes), one remounted read-only and back (EROFS on
open; the kernel refuses a read-only remount while a file is open for writing, so the test waits for the
writer's rotation by age), a server killed with SIGKILL under load and restarted on the same log, and a
soak (slow) showing memory stays flat while the log keeps failing. For each: served (rows the clients got a
200 for) == written + dropped by reason, the readers (the drift stage's and the A/B analysis') find exactly
the written rows, and whether writing resumed. EIO and EACCES are injected in the unit tests
(tests/unit/serving/test_serving_inference_log.py): a tmpfs cannot produce them.

Each test prints its numbers (run with -s to see them).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from serving_support import (
    PredictLoad,
    Server,
    Tmpfs,
    http,
    metric,
    metric_samples,
    rss_kib,
    shutdown_books,
    start_server,
)

from housing.config import load_params
from housing.inference_log import ReadStats, log_files, read_records
from housing.logwindow import frame_from_log

pytestmark = pytest.mark.integration

REPORT_KEYS = ("rows", "written_rows", "dropped_rows", "pending_rows", "write_errors")


class Rig:
    """Servers and volumes of one test, torn down in that order (a busy tmpfs cannot be unmounted)."""

    def __init__(self, model_dir: Path, tmp_path: Path) -> None:
        self.model_dir, self.tmp_path = model_dir, tmp_path
        self.servers: list[Server] = []
        self.volumes: list[Tmpfs] = []

    def tmpfs(self, path: Path, size: str) -> Tmpfs:
        volume = Tmpfs(path, size)
        self.volumes.append(volume)
        return volume

    def serve(self, workdir: Path, *extra: str) -> Server:
        server = start_server(self.model_dir, workdir, "--log-flush-interval", "0.05", *extra)
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        for volume in self.volumes:
            volume.unmount()


@pytest.fixture
def rig(model_dir, tmp_path):
    rig = Rig(model_dir, tmp_path)
    yield rig
    rig.close()


def model_of(server: Server) -> str:
    return http("GET", f"{server.url}/v1/models")[2]["models"][0]


def wait_for(predicate, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def log_state(server: Server) -> dict[str, float]:
    samples = metric_samples(server.url)
    return {
        "healthy": metric(samples, "model_inference_log_healthy"),
        "pending": metric(samples, "model_inference_log_pending_rows"),
        "written": metric(samples, "model_inference_log_written_rows_total"),
        "queue_full": metric(samples, "model_inference_log_dropped_total", reason="queue_full"),
        "ENOSPC": metric(samples, "model_inference_log_write_errors_total", error="ENOSPC"),
        "EROFS": metric(samples, "model_inference_log_write_errors_total", error="EROFS"),
    }


def check_books(server: Server, served: int, log_dir: Path) -> tuple[dict, list[dict], ReadStats]:
    """After a graceful stop: served == written + dropped, nothing pending, readers find the written rows."""
    assert server.stop() in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    books = shutdown_books(server)
    stats = ReadStats()
    records = read_records(log_dir, stats=stats)
    assert books["pending_rows"] == 0
    assert books["rows"] == served
    assert books["rows"] == books["written_rows"] + sum(books["dropped_rows"].values())
    assert len(records) == books["written_rows"]
    return books, records, stats


def report(name: str, served: int, books: dict, **extra) -> None:
    print(f"\n[{name}] served={served} " + json.dumps({k: books[k] for k in REPORT_KEYS} | extra))


def resumed(server: Server) -> list[dict]:
    return [line for line in server.log_lines() if line["message"] == "inference log writing resumed"]


def test_a_full_volume_then_space_again(rig, tmp_path):
    """256 KiB fill within seconds; the backlog (3000 rows) overflows; then the volume grows: writing resumes
    by itself, the backlog is written, only what overflowed is lost, and counted."""
    workdir = tmp_path / "full"
    volume = rig.tmpfs(workdir / "inference", "256k")
    server = rig.serve(workdir, "--log-queue-rows", "3000")
    load = PredictLoad(server.url, model_of(server), threads=2, rate=300).start()
    wait_for(lambda: log_state(server)["queue_full"] > 0, what="the volume filled and the backlog overflowed")
    during = log_state(server)
    assert during["healthy"] == 0
    assert during["ENOSPC"] > 0
    assert during["pending"] >= 2900  # the backlog holds what it can
    volume.resize("64m")
    wait_for(lambda: (state := log_state(server))["pending"] < 100 and state["healthy"] == 1, what="resumed")
    time.sleep(1.0)  # and goes on writing
    served = load.stop()
    assert load.failed == {}  # predictions never noticed
    books, _, stats = check_books(server, served, volume.path)
    assert books["dropped_rows"]["queue_full"] > 0
    assert books["dropped_rows"]["write_error"] == books["dropped_rows"]["closed"] == 0
    assert books["written_rows"] > during["written"] + 2900  # the backlog, and what came after
    assert stats.skipped == 0  # lines cut short by ENOSPC were truncated away
    (outage,) = resumed(server)
    report("full volume", served, books, outage_seconds=outage["outage_seconds"], resumed=True)


def test_a_volume_remounted_read_only_then_read_write_and_a_shutdown_while_read_only(rig, tmp_path):
    workdir = tmp_path / "ro"
    volume = rig.tmpfs(workdir / "inference", "16m")
    server = rig.serve(workdir, "--log-rotate-seconds", "0.2")
    model = model_of(server)
    served = 0

    def read_only_when_idle() -> int:
        """Remount read-only once the writer has caught up and closed its file (rotation by age)."""
        wait_for(lambda: log_state(server)["pending"] == 0)
        time.sleep(0.4)
        return volume.remount("ro")

    load = PredictLoad(server.url, model, rate=200).start()
    time.sleep(0.5)
    served += load.stop()
    read_only_when_idle()
    load = PredictLoad(server.url, model, threads=2, rate=200).start()
    wait_for(lambda: log_state(server)["EROFS"] >= 2, what="opening a file failed with EROFS, and again")
    time.sleep(1.0)
    during = log_state(server)
    assert during["healthy"] == 0
    assert during["pending"] > 0
    volume.remount("rw")
    wait_for(lambda: log_state(server)["healthy"] == 1, what="resumed")
    served += load.stop()
    wait_for(lambda: log_state(server)["pending"] == 0)
    assert len(resumed(server)) == 1
    written_before_shutdown = log_state(server)["written"]
    # Read-only again, and the pod is stopped before the volume comes back: the backlog is given up.
    read_only_when_idle()
    load = PredictLoad(server.url, model, threads=2, rate=200).start()
    time.sleep(1.0)
    served += load.stop()
    assert load.failed == {}
    backlog = log_state(server)["pending"]
    assert backlog > 0
    books, _, stats = check_books(server, served, volume.path)
    assert books["written_rows"] == written_before_shutdown
    assert books["dropped_rows"] == {"queue_full": 0, "write_error": backlog, "closed": 0}
    assert stats.skipped == 0
    assert books["write_errors"]["EROFS"] >= 3
    report(
        "read-only volume",
        served,
        books,
        outage_seconds=resumed(server)[0]["outage_seconds"],
        resumed_after_rw=True,
        lost_at_shutdown_while_ro=backlog,
    )


def test_sigkill_mid_write_then_restart_on_the_same_log(rig, tmp_path):
    """SIGKILL while 200-row requests are being logged (writes of up to 256 KiB): the log stays readable by
    the drift stage's reader, and a restarted server never touches the old files and keeps exact books."""
    workdir = tmp_path / "kill"
    log_dir = workdir / "inference"
    first = rig.serve(workdir)
    model = model_of(first)
    load = PredictLoad(first.url, model, rows=200, threads=2, rate=50).start()
    wait_for(lambda: load.served_rows >= 20_000, what="some load")
    at_kill = log_state(first)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    served_first = load.stop()
    before = {path.name: path.stat().st_size for path in log_files(log_dir)}
    stats_first = ReadStats()
    records_first = read_records(log_dir, stats=stats_first)  # no exception: a torn line is skipped
    # Every row the writer had written survives (the kernel has it); rows still queued in memory die with
    # the process (SIGTERM would have flushed them). A response may be lost in flight after its rows were
    # logged, hence the slack of one request per client thread.
    assert at_kill["written"] <= len(records_first) <= served_first + 2 * 200
    assert stats_first.torn <= len(before)
    assert all({"request_id", "instance", "features", "prediction"} <= set(r) for r in records_first)

    second = rig.serve(workdir)
    load = PredictLoad(second.url, model, threads=2, rate=200).start()
    time.sleep(1.0)
    served_second = load.stop()
    assert second.stop() in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    books = shutdown_books(second)
    assert {path.name: path.stat().st_size for path in log_files(log_dir) if path.name in before} == before
    new_files = [path for path in log_files(log_dir) if path.name not in before]
    stats_second = ReadStats()
    records_second = [r for path in new_files for r in read_records(path, stats=stats_second)]
    assert books["rows"] == served_second == books["written_rows"] == len(records_second)
    assert stats_second.skipped == 0
    # The drift stage's reader over both runs: every record, the torn lines counted, no crash.
    window = frame_from_log(log_dir, load_params().data)
    assert len(window) == len(records_first) + len(records_second)
    assert window.attrs["log_skipped_lines"] == stats_first.skipped
    print(
        f"\n[SIGKILL] first run: served={served_first} written={len(records_first)} "
        f"lost_in_memory={served_first - len(records_first)} (backlog {at_kill['pending']:.0f} rows "
        f"just before the kill) torn_lines={stats_first.torn}; "
        f"restart: served={served_second} " + json.dumps({k: books[k] for k in REPORT_KEYS})
    )


SOAK_SECONDS = 30


@pytest.mark.slow
def test_soak_memory_stays_flat_while_the_log_keeps_failing(rig, tmp_path):
    """~400 requests/s for 30 s against a full volume, backlog full: RSS (from /proc) stays flat; then the
    volume grows and the books are exact."""
    workdir = tmp_path / "soak"
    volume = rig.tmpfs(workdir / "inference", "128k")
    # A small feedback memory, so that RSS shows the log and not predictions remembered for feedback.
    server = rig.serve(workdir, "--log-queue-rows", "5000", "--feedback-capacity-rows", "1000")
    load = PredictLoad(server.url, model_of(server), threads=2, rate=200).start()
    wait_for(lambda: log_state(server)["queue_full"] > 0, what="the backlog filled")
    samples = []
    started = time.monotonic()
    while time.monotonic() - started < SOAK_SECONDS:
        samples.append(rss_kib(server.proc.pid))
        time.sleep(1.0)
    during = log_state(server)
    assert during["healthy"] == 0
    half = len(samples) // 2
    growth = sum(samples[half:]) / (len(samples) - half) - sum(samples[:half]) / half
    assert max(samples) - min(samples) < 4096, samples  # KiB
    assert growth < 1024, samples
    volume.resize("64m")
    wait_for(lambda: (state := log_state(server))["healthy"] == 1 and state["pending"] == 0)
    served = load.stop()
    assert load.failed == {}
    books, _, stats = check_books(server, served, volume.path)
    assert stats.skipped == 0
    report(
        "soak",
        served,
        books,
        rss_kib_min=min(samples),
        rss_kib_max=max(samples),
        rss_kib_second_half_minus_first=round(growth),
        seconds=SOAK_SECONDS,
    )
