"""Model server benchmark: `housing serve` vs the KServe SDK V1 server with the sklearn model, side by side.

Each server is pinned to one core (`taskset -c 0`), the load generator to the other (`taskset -c 1`), over
loopback. Load: Debian `wrk` with a Lua script for the POST body (a Python asyncio client when wrk is
missing), a fixed concurrency, a bounded duration, each measurement repeated and the median reported. Our
server runs with validation, metrics and the inference log all on (its defaults).

    make bench-serving            # installs wrk and the kserve SDK (`bench` extra) when missing
    .venv/bin/python benchmarks/serving_bench.py --duration 5 --repeats 3

Prints req/s, p50/p99 latency, batch-100 req/s, RSS and the ratio against the KServe baseline, checks them
against the targets of issue 3 and exits non-zero when one is missed (``--no-fail`` to only report).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = [8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23]
TARGETS = {"rps": 2000.0, "p99_ms": 15.0, "batch_rps": 400.0, "rss_mb": 200.0, "ratio": 6.0}
KSERVE_PORT_ENV = "BENCH_KSERVE_PORT"
KSERVE_MODEL_ENV = "BENCH_KSERVE_MODEL"
KSERVE_FLAVOR_ENV = "BENCH_KSERVE_FLAVOR"  # sklearn | onnx


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


# --- servers ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(cmd: list[str], core: int, pin: bool) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if pin else cmd


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before becoming ready ({url})")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server not ready within {timeout} s ({url})")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def server_pid(proc: subprocess.Popen) -> int:
    """The Python process itself (taskset execs it, so the pid is the same)."""
    return proc.pid


# --- load generation ----------------------------------------------------------------------------------------


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk_run(url: str, body: bytes, duration: float, concurrency: int, pin: bool, workdir: Path) -> Run:
    script = workdir / "post.lua"
    payload = workdir / "body.json"
    payload.write_bytes(body)
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{payload}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
    )
    cmd = pinned(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        1,
        pin,
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    try:
        return _parse_wrk(out)
    except (AttributeError, ValueError):
        raise SystemExit(f"could not parse wrk output:\n{out}") from None


def _parse_wrk(out: str) -> Run:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1))
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in match.groups())
    return Run(rps, p50, p99, errors, requests)


async def _python_load(url: str, body: bytes, duration: float, concurrency: int) -> Run:
    host_port, path = url.removeprefix("http://").split("/", 1)
    host, port = host_port.split(":")
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status = (await reader.readline()).split()[1]
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            errors += status != b"200"
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return Run(
        rps=len(latencies) / elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1e3,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1e3,
        errors=errors,
        requests=len(latencies),
    )


def load(url: str, body: bytes, args: argparse.Namespace, workdir: Path, repeats: int | None = None) -> Run:
    """Warm up, then run `repeats` measurements and keep the median of each figure."""
    runs = []
    for i in range(-1, repeats or args.repeats):
        duration = args.warmup if i < 0 else args.duration
        if args.use_wrk:
            run = wrk_run(url, body, duration, args.concurrency, args.pin, workdir)
        else:
            run = asyncio.run(_python_load(url, body, duration, args.concurrency))
        if i >= 0:
            runs.append(run)
    return Run(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        errors=sum(r.errors for r in runs),
        requests=sum(r.requests for r in runs),
    )


# --- the two servers ----------------------------------------------------------------------------------------


def bench_ours(args: argparse.Namespace, workdir: Path) -> dict:
    port = free_port()
    log_dir = workdir / "inference-log"
    cmd = [
        sys.executable,
        "-m",
        "housing.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model-dir",
        str(args.model_dir),
        "--inference-log-dir",
        str(log_dir),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOUSING_LOG_LEVEL": "WARNING"}
    with (workdir / "ours.log").open("wb") as err:
        proc = subprocess.Popen(
            pinned(cmd, 0, args.pin), stdout=err, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(proc, f"{base}/v2/health/ready")
        with urllib.request.urlopen(f"{base}/v1/models") as response:
            name = json.load(response)["models"][0]
        rss_idle, _ = rss_mb(server_pid(proc))
        v1 = f"{base}/v1/models/{name}:predict"
        single = load(v1, json.dumps({"instances": [ROW]}).encode(), args, workdir)
        batch = load(v1, json.dumps({"instances": [ROW] * 100}).encode(), args, workdir)
        v2_body = {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": ROW}]}
        v2 = load(f"{base}/v2/models/{name}/infer", json.dumps(v2_body).encode(), args, workdir, repeats=1)
        rss, peak = rss_mb(server_pid(proc))
        with urllib.request.urlopen(f"{base}/metrics") as response:
            metrics = response.read().decode()
        dropped = float(re.search(r"^model_inference_log_dropped_total (\S+)$", metrics, re.M).group(1))
    finally:
        stop(proc)
    logged = sum(1 for f in log_dir.glob("inference-*.jsonl") for _ in f.open("rb"))
    return {
        "single": single,
        "batch": batch,
        "v2": v2,
        "rss_idle_mb": rss_idle,
        "rss_mb": rss,
        "rss_peak_mb": peak,
        "log_rows": logged,
        "log_dropped": dropped,
    }


def bench_kserve(args: argparse.Namespace, workdir: Path, flavor: str) -> dict | None:
    """The KServe SDK V1 server (its own process) serving the sklearn pipeline or the same ONNX model."""
    try:
        import kserve  # noqa: F401
    except ImportError:
        print("  kserve is not installed (pip install -e '.[bench]'): no baseline, no ratio")
        return None
    model_path = args.sklearn_model if flavor == "sklearn" else args.model_dir
    if not model_path.exists():
        print(f"  {model_path} missing (run `dvc repro`): no KServe {flavor} baseline")
        return None
    port = free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        KSERVE_PORT_ENV: str(port),
        KSERVE_MODEL_ENV: str(model_path),
        KSERVE_FLAVOR_ENV: flavor,
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "--kserve-server"]
    with (workdir / f"kserve-{flavor}.log").open("wb") as err:
        proc = subprocess.Popen(
            pinned(cmd, 0, args.pin), stdout=err, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(proc, f"{base}/v1/models/housing")
        single = load(
            f"{base}/v1/models/housing:predict", json.dumps({"instances": [ROW]}).encode(), args, workdir
        )
        rss, peak = rss_mb(server_pid(proc))
    finally:
        stop(proc)
    return {"single": single, "rss_mb": rss, "rss_peak_mb": peak}


def serve_kserve_baseline() -> None:
    """Child process: the KServe SDK V1 server with the sklearn pipeline (the pre-ONNX way to serve it), or
    with the ONNX model (to separate framework overhead from model speed)."""
    import kserve
    import numpy as np

    path = Path(os.environ[KSERVE_MODEL_ENV])
    if os.environ[KSERVE_FLAVOR_ENV] == "sklearn":
        from housing.modelio import load_pipeline

        def make_predict():
            pipeline = load_pipeline(path)
            return pipeline.predict
    else:
        from housing.artifact import load_verified, onnx_session

        def make_predict():
            metadata, payload = load_verified(path)
            session = onnx_session(payload)
            return lambda X: session.run(None, {metadata.input_name: X})[0].ravel()

    class HousingModel(kserve.Model):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.predict_fn = None

        def load(self) -> bool:
            self.predict_fn = make_predict()
            self.ready = True
            return self.ready

        def predict(self, payload, headers=None, response_headers=None):  # noqa: ARG002
            X = np.asarray(payload["instances"], dtype=np.float32)
            return {"predictions": self.predict_fn(X).tolist()}

    model = HousingModel("housing")
    model.load()
    # Defaults otherwise, minus per-request latency logging and gRPC (a fairer, faster baseline).
    server = kserve.ModelServer(
        http_port=int(os.environ[KSERVE_PORT_ENV]), enable_grpc=False, enable_latency_logging=False, workers=1
    )
    server.start([model])


# --- report -------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up before measuring")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per figure (median reported)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--sklearn-model", type=Path, default=ROOT / "artifacts" / "model.skops")
    parser.add_argument("--skip-kserve", action="store_true")
    parser.add_argument(
        "--python-client", action="store_true", help="use the asyncio client even if wrk exists"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--no-fail", action="store_true", help="report only; exit 0 even if a target is missed"
    )
    parser.add_argument("--kserve-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kserve_server:
        serve_kserve_baseline()
        return 0

    args.use_wrk = shutil.which("wrk") is not None and not args.python_client
    args.pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    generator = "wrk" if args.use_wrk else "python asyncio client (install wrk for accuracy)"
    pinning = "yes" if args.pin else "NO (taskset missing or 1 CPU)"
    print(
        f"load generator: {generator}; concurrency {args.concurrency}; "
        f"{args.repeats} x {args.duration:g} s per figure (median); "
        f"server on core 0, client on core 1: {pinning}"
    )
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        workdir = Path(tmp)
        print("housing serve (validation + metrics + inference log on) ...")
        ours = bench_ours(args, workdir)
        baseline = baseline_onnx = None
        if not args.skip_kserve:
            print("KServe SDK V1 server + sklearn pipeline ...")
            baseline = bench_kserve(args, workdir, "sklearn")
            print("KServe SDK V1 server + the same ONNX model ...")
            baseline_onnx = bench_kserve(args, workdir, "onnx")

    s, b, v2 = ours["single"], ours["batch"], ours["v2"]
    print()
    print(f"{'':34s}{'req/s':>10s}{'p50 ms':>9s}{'p99 ms':>9s}{'errors':>8s}")
    print(f"{'housing serve V1, 1 row':34s}{s.rps:10.0f}{s.p50_ms:9.2f}{s.p99_ms:9.2f}{s.errors:8d}")
    print(f"{'housing serve V1, 100 rows':34s}{b.rps:10.0f}{b.p50_ms:9.2f}{b.p99_ms:9.2f}{b.errors:8d}")
    print(f"{'housing serve V2, 1 row':34s}{v2.rps:10.0f}{v2.p50_ms:9.2f}{v2.p99_ms:9.2f}{v2.errors:8d}")
    if baseline:
        k = baseline["single"]
        print(
            f"{'KServe SDK V1 + sklearn, 1 row':34s}{k.rps:10.0f}{k.p50_ms:9.2f}{k.p99_ms:9.2f}{k.errors:8d}"
        )
    if baseline_onnx:
        k = baseline_onnx["single"]
        print(f"{'KServe SDK V1 + ONNX, 1 row':34s}{k.rps:10.0f}{k.p50_ms:9.2f}{k.p99_ms:9.2f}{k.errors:8d}")
    print(
        f"\nRSS housing serve: {ours['rss_mb']:.0f} MB after load (peak {ours['rss_peak_mb']:.0f} MB, "
        f"idle {ours['rss_idle_mb']:.0f} MB)"
        + (f"; KServe baseline: {baseline['rss_mb']:.0f} MB" if baseline else "")
    )
    print(f"inference log: {ours['log_rows']} rows written, {ours['log_dropped']:.0f} dropped")
    ratio = s.rps / baseline["single"].rps if baseline else None
    if ratio:
        print(f"ratio vs KServe SDK V1 + sklearn (1 row): {ratio:.1f}x")
    ratio_onnx = s.rps / baseline_onnx["single"].rps if baseline_onnx else None
    if ratio_onnx:
        print(f"ratio vs KServe SDK V1 + ONNX (1 row, framework overhead only): {ratio_onnx:.1f}x")

    checks = [
        (f"single-row >= {TARGETS['rps']:.0f} req/s", s.rps >= TARGETS["rps"]),
        (f"p99 <= {TARGETS['p99_ms']:g} ms at concurrency {args.concurrency}", s.p99_ms <= TARGETS["p99_ms"]),
        (f"batch-100 >= {TARGETS['batch_rps']:.0f} req/s", b.rps >= TARGETS["batch_rps"]),
        (f"RSS <= {TARGETS['rss_mb']:.0f} MB", ours["rss_peak_mb"] <= TARGETS["rss_mb"]),
        ("0 errors", s.errors + b.errors + v2.errors == 0),
    ]
    if ratio is not None:
        checks.append((f">= {TARGETS['ratio']:g}x the KServe SDK server", ratio >= TARGETS["ratio"]))
    print()
    for label, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {label}")
    if args.json:
        figures = {
            "single": vars(s),
            "batch100": vars(b),
            "v2_single": vars(v2),
            "rss_mb": ours["rss_mb"],
            "rss_peak_mb": ours["rss_peak_mb"],
            "kserve_single": vars(baseline["single"]) if baseline else None,
            "ratio": ratio,
            "kserve_onnx_single": vars(baseline_onnx["single"]) if baseline_onnx else None,
            "ratio_onnx": ratio_onnx,
            "load_generator": "wrk" if args.use_wrk else "python",
            "pinned": args.pin,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    missed = [label for label, ok in checks if not ok]
    return 1 if missed and not args.no_fail else 0


if __name__ == "__main__":
    sys.exit(main())
