"""Helpers for tests that run real `housing serve` processes on 127.0.0.1 (a free port each)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ROW = [8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23]
FEEDBACK_TOKEN = "feedback-token-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}


def feedback_args(directory: Path) -> list[str]:
    """``housing serve`` flags for the feedback token and signing key, in files under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    token, key = directory / "feedback-token", directory / "feedback-signing-key"
    token.write_text(FEEDBACK_TOKEN)
    key.write_text("feedback-signing-key-for-the-tests-0123456789")
    return ["--feedback-token-file", str(token), "--feedback-signing-key-file", str(key)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log_dir: Path
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "housing.cli", "serve", *args]


def launch(
    cmd: list[str], stderr_path: Path, env: dict | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    with stderr_path.open("wb") as err:
        return subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, env=full_env, cwd=cwd or ROOT)


def wait_ready(proc: subprocess.Popen, url: str, stderr_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{stderr_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"server not ready within {timeout} s:\n{stderr_path.read_text()}")


def start_server(model_dir: Path, workdir: Path, *extra: str, env: dict | None = None) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_dir = workdir / "inference"
    stderr_path = workdir / "server.log"
    cmd = command(
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model-dir",
        str(model_dir),
        "--inference-log-dir",
        str(log_dir),
        *feedback_args(workdir / "secrets"),
        *extra,
    )
    proc = launch(cmd, stderr_path, env)
    server = Server(proc, port, log_dir, stderr_path)
    wait_ready(proc, server.url, stderr_path)
    return server


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
