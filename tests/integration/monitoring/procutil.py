"""Helpers to run real processes on 127.0.0.1 in tests: free ports, readiness polling, clean shutdown.

Shared by tests/integration/monitoring and tests/integration/deploy.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require(
    binary: str, hint: str = "run `make k8s-tools` (Debian prometheus, prometheus-alertmanager)"
) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"SKIPPED LOUDLY: `{binary}` not installed; {hint}")
    return path


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"process exited with {proc.returncode} before {url} answered:\n{log.read_text()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout}s:\n{log.read_text()}")


@contextmanager
def running(
    cmd: list[str], log: Path, ready_url: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` (output to ``log``), wait until ``ready_url`` answers 200, terminate it afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_http(ready_url, proc, log, timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
