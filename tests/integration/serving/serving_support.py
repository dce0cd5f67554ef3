"""Helpers for tests that run real `housing serve` processes on 127.0.0.1 (a free port each).

The process itself is :mod:`housing.server_process`'s (shared with the closed loop and the other integration
tests); this module adds the defaults of these tests (the repository as working directory, the inference log
under the test's directory) and a plain HTTP helper.
"""

from __future__ import annotations

import json
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
