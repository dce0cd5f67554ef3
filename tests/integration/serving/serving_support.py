"""Helpers for tests that run real `housing serve` processes on 127.0.0.1 (a free port each).

The process itself is :mod:`housing.server_process`'s (shared with the closed loop and the other integration
tests); this module adds the defaults of these tests (the repository as working directory, the inference log
under the test's directory) and a plain HTTP helper.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from housing.server_process import ServerProcess, free_port, launch, serve_command, wait_ready
from housing.server_process import start_server as start_process

__all__ = ["ROOT", "ROW", "Server", "command", "free_port", "http", "launch", "start_server", "wait_ready"]

ROOT = Path(__file__).resolve().parents[3]
ROW = [8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23]
Server = ServerProcess
command = serve_command


def start_server(model_dir: Path, workdir: Path, *extra: str, env: dict | None = None) -> Server:
    """A server of ``model_dir`` logging to ``workdir/inference``, its output in ``workdir/server.log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    return start_process(
        workdir / "server.log",
        "--model-dir",
        str(model_dir),
        *extra,
        log_dir=workdir / "inference",
        env=env,
        cwd=ROOT,
    )


def http(method: str, url: str, body: object | bytes | None = None, headers: dict | None = None):
    """Plain urllib: returns (status, headers, parsed JSON or text)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, response_headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, response_headers, raw = exc.code, exc.headers, exc.read()
    if response_headers.get("Content-Type", "").startswith("application/json"):
        return status, response_headers, json.loads(raw)
    return status, response_headers, raw.decode()


# --- real volume faults, load, the server's books (test_serving_log_faults.py) ----------------------------


class Tmpfs:
    """A tmpfs mounted for one test: fill it (a small size), grow it, remount it read-only and back.

    Needs root or password-less sudo (GitHub's runners have it); otherwise the test is skipped loudly.
    """

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        path.mkdir(parents=True, exist_ok=True)
        owner = f"uid={os.getuid()},gid={os.getgid()},mode=0755"
        proc = self._run("mount", "-t", "tmpfs", "-o", f"size={size},{owner}", "tmpfs", str(path))
        if proc.returncode != 0:
            import pytest

            pytest.skip(
                f"SKIPPED LOUDLY: cannot mount a tmpfs ({proc.stderr.strip()}): real volume faults untested"
            )

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.sudo, *cmd], capture_output=True, text=True, timeout=30, check=False)

    def resize(self, size: str) -> None:
        proc = self._run("mount", "-o", f"remount,size={size}", str(self.path))
        assert proc.returncode == 0, proc.stderr

    def remount(self, mode: str, timeout: float = 20.0) -> int:
        """``ro`` or ``rw``; returns the attempts. A read-only remount is refused (EBUSY) while a file is open
        for writing, so it is retried until the writer has closed its file (rotation by age)."""
        deadline = time.monotonic() + timeout
        attempts = 0
        while True:
            attempts += 1
            proc = self._run("mount", "-o", f"remount,{mode}", str(self.path))
            if proc.returncode == 0:
                return attempts
            assert time.monotonic() < deadline, f"remount {mode} kept failing: {proc.stderr}"
            time.sleep(0.005)

    def unmount(self) -> None:
        if self._run("umount", str(self.path)).returncode != 0:
            self._run("umount", "-l", str(self.path))


class PredictLoad:
    """V1 predict requests from ``threads`` keep-alive connections until :meth:`stop`; counts the rows
    answered 200 (what was *served*), other statuses and transport errors. ``rate``: requests per second
    per thread at most (None: as fast as it goes)."""

    def __init__(
        self, url: str, model: str, rows: int = 1, threads: int = 2, rate: float | None = None
    ) -> None:
        import threading

        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.path = f"/v1/models/{model}:predict"
        self.body = json.dumps({"instances": [ROW] * rows}).encode()
        self.rows = rows
        self.interval = None if rate is None else 1.0 / rate
        self.served_rows = 0
        self.failed: dict[object, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self) -> PredictLoad:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return self.served_rows

    def _count(self, key: object = None, rows: int = 0) -> None:
        with self._lock:
            if key is None:
                self.served_rows += rows
            else:
                self.failed[key] = self.failed.get(key, 0) + 1

    def _run(self) -> None:
        import http.client

        connection = None
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
                connection.request("POST", self.path, self.body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    self._count(rows=self.rows)
                else:
                    self._count(response.status)
            except (OSError, http.client.HTTPException) as exc:
                self._count(type(exc).__name__)
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(0.01)
            if self.interval is not None:
                time.sleep(max(0.0, self.interval - (time.monotonic() - began)))
        if connection is not None:
            connection.close()


def metric_samples(url: str) -> dict[tuple, float]:
    """/metrics as {(sample name, ((label, value), ...)): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    _, _, text = http("GET", f"{url}/metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return sum(v for (n, found), v in samples.items() if n == name and set(labels.items()) <= set(found))


def shutdown_books(server: Server) -> dict:
    """The inference log's books from the server's shutdown line (``inference log flushed``)."""
    (line,) = [entry for entry in server.log_lines() if entry["message"] == "inference log flushed"]
    return line


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
