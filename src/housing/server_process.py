"""A real ``housing serve`` subprocess on 127.0.0.1: started on a free port, awaited until ready, read
(output, rolling score gauges), stopped with SIGTERM so it drains and flushes its inference log.

One helper for everything that runs the server as a process: the closed loop (``housing loop``) and the
integration tests (tests/integration/serving, tests/integration/experiments, tests/integration/deploy, the
image checks). Client side only: nothing in serving/ imports it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from housing.errors import HousingError
from housing.strict import Strict
from housing.variants import Variant

LOCALHOST = "127.0.0.1"
READY_PATH = "/v2/health/ready"


class ServerStartError(HousingError):
    """The model server exited, or did not become ready in time (the message ends with its last lines)."""


class VariantScores(Strict):
    """A variant's rolling scores on fed-back predictions, as the server's /metrics reports them."""

    mae: float | None = None  # None: no feedback yet (the server exports NaN)
    r2: float | None = None
    feedback: float | None = None  # fed-back predictions counted


_GAUGES = {"model_mae_score": "mae", "model_r2_score": "r2", "model_feedback_total": "feedback"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def serve_command(*args: str) -> list[str]:
    """``housing serve`` with this interpreter (the same virtualenv, whatever PATH says)."""
    return [sys.executable, "-m", "housing.cli", "serve", *args]


def launch(
    cmd: list[str], output: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """Start ``cmd`` with stdout and stderr in ``output``; one OpenMP thread unless ``env`` says otherwise."""
    full_env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env or {})}
    with output.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)


def _tail(output: Path, lines: int = 5) -> str:
    text = output.read_text(errors="replace").strip().splitlines() if output.exists() else []
    return " | ".join(text[-lines:]) or "(no output)"


def wait_ready(proc: subprocess.Popen, url: str, output: Path, timeout: float = 60.0) -> None:
    """Poll ``url`` + /v2/health/ready until it answers 200; ServerStartError (the process killed) if the
    process exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(f"model server exited with {proc.returncode}: {_tail(output)}")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(f"{url}{READY_PATH}", timeout=1) as response,  # noqa: S310  # nosec B310
        ):
            if response.status == 200:
                return
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise ServerStartError(f"model server not ready within {timeout:g} s: {_tail(output)}")


@dataclass
class ServerProcess:
    """A started ``housing serve``; a context manager that stops it on exit."""

    proc: subprocess.Popen
    port: int
    log_dir: Path | None  # its inference log (None: off, or set through the environment)
    stderr_path: Path  # its stdout and stderr
    feedback_token_file: Path | None = None  # the bearer token POST /v1/feedback needs (None: no feedback)

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's JSON log lines (its default log format)."""
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]

    def gauges(self) -> dict[Variant, VariantScores]:
        """Rolling scores per variant from /metrics (variants without feedback yet have none)."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:  # noqa: S310  # nosec B310
            text = response.read().decode()
        values: dict[Variant, dict[str, float | None]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in _GAUGES:
                    variant = Variant(sample.labels["variant"])
                    value = None if math.isnan(sample.value) else float(sample.value)
                    values.setdefault(variant, {})[_GAUGES[sample.name]] = value
        return {variant: VariantScores(**scores) for variant, scores in values.items()}

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the server drains and flushes), then SIGKILL after ``timeout``; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def feedback_secrets(directory: Path) -> tuple[Path, Path]:
    """A fresh feedback bearer token and signing key, in files of ``directory`` (mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = directory / "feedback-token", directory / "feedback-signing-key"
    for path in files:
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return files


def start_server(
    output: Path,
    *args: str,
    log_dir: Path | None = None,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    feedback: bool = True,
) -> ServerProcess:
    """``housing serve --host 127.0.0.1 --port <free> [--inference-log-dir log_dir] *args``, ready to use.

    ``output`` receives the server's output; ``env`` adds to this process's environment (``HOUSING_*``
    settings work too). ``feedback``: a fresh feedback token and signing key in ``<output>.secrets/`` (the
    server accepts no feedback without one); the token's file is ``feedback_token_file``.
    """
    port = port or free_port()
    log_args = ["--inference-log-dir", str(log_dir)] if log_dir is not None else []
    token_file = None
    if feedback:
        token_file, key_file = feedback_secrets(output.with_name(f"{output.name}.secrets"))
        log_args += ["--feedback-token-file", str(token_file), "--feedback-signing-key-file", str(key_file)]
    cmd = serve_command("--host", LOCALHOST, "--port", str(port), *log_args, *args)
    server = ServerProcess(launch(cmd, output, env, cwd), port, log_dir, output, token_file)
    wait_ready(server.proc, server.url, output, timeout)
    return server
