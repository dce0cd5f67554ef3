"""Model server benchmark: `housing serve` before and after a change, and the KServe SDK server, in one run.

Servers, all started once and kept up, each on the same ONNX model:
- **after**: this checkout's `housing serve` (validation, metrics and the inference log on: its defaults; and
  feedback, so every answer carries a signed ``X-Feedback-Token``, as in a cluster);
- **before**: `housing serve` of another git revision (``--before``, default ``main``), its ``src/`` taken
  with ``git archive`` into a temporary directory and run with this virtualenv (``--before none`` skips it);
- **kserve-onnx**: the KServe SDK V1 server (``kserve``'s ModelServer, gRPC and latency logging off) calling
  the same onnxruntime session: the baseline the goal is measured against;
- **kserve-sklearn** (``--sklearn``): the same server with the scikit-learn pipeline.

Every server is pinned to core 0 (``taskset``), the load generator (Debian ``wrk``) to core 1, over loopback,
at a fixed concurrency. Measurements are interleaved: each round runs every (server, load) once, in an order
rotated per round, so a busy moment of a shared machine hits every server alike; each figure is the median
of its rounds. Besides req/s and latency (wrk), each run records the server's CPU time per request (user +
system, from /proc): when other work shares the cores, a fast server waits for the scheduler and its req/s
understate it, while its CPU cost per request stays put.

    make bench-serving                          # installs wrk and the bench extra when missing
    .venv/bin/python benchmarks/serving_bench.py --duration 3 --rounds 5 --before main

Prints req/s, p50/p99 latency and ratios, checks the targets and exits non-zero when one is missed
(``--no-fail`` to only report).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from housing.server_process import feedback_secrets, free_port

ROOT = Path(__file__).resolve().parents[1]
ROW = [8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23]
# Issue 3's targets for `housing serve`, and issue 10's goal against the KServe SDK server on the same model.
TARGETS = {"rps": 2000.0, "p99_ms": 15.0, "batch_rps": 400.0, "rss_mb": 200.0, "ratio_onnx": 3.0}
KSERVE_PORT_ENV = "BENCH_KSERVE_PORT"
KSERVE_MODEL_ENV = "BENCH_KSERVE_MODEL"
KSERVE_FLAVOR_ENV = "BENCH_KSERVE_FLAVOR"  # sklearn | onnx
KSERVE_NAME = "housing"


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us: float = float("nan")  # the server's CPU time (user + system) per request during the run


@dataclass
class Load:
    """One kind of request: a body for a path (``{name}`` is the served model name)."""

    label: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


@dataclass
class Server:
    label: str
    proc: subprocess.Popen
    base: str
    model_name: str
    loads: list[Load]
    log_dir: Path | None = None
    runs: dict[str, list[Run]] = field(default_factory=dict)


def _v2_binary_body() -> tuple[bytes, dict[str, str]]:
    """A V2 request as tritonclient sends it by default: binary input, binary output."""
    header = json.dumps(
        {
            "inputs": [
                {"name": "input", "shape": [1, 8], "datatype": "FP32", "parameters": {"binary_data_size": 32}}
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return header + struct.pack("<8f", *ROW), headers


def ours_loads(binary: bool) -> list[Load]:
    v2_json = {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": ROW}]}
    loads = [
        Load("V1, 1 row", "/v1/models/{name}:predict", json.dumps({"instances": [ROW]}).encode()),
        Load("V1, 100 rows", "/v1/models/{name}:predict", json.dumps({"instances": [ROW] * 100}).encode()),
        Load("V2, 1 row", "/v2/models/{name}/infer", json.dumps(v2_json).encode()),
    ]
    if binary:
        body, headers = _v2_binary_body()
        loads.append(Load("V2 binary, 1 row", "/v2/models/{name}/infer", body, headers))
    return loads


# --- processes --------------------------------------------------------------------------------------------


def pinned(cmd: list[str], core: int, pin: bool) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if pin else cmd


def prioritised(cmd: list[str], nice: int) -> list[str]:
    """``nice -n``: on a machine shared with other work, a negative value (root) steadies the figures."""
    return ["nice", "-n", str(nice), *cmd] if nice else cmd


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
    """(current RSS, peak RSS) of a process in MB (taskset execs the server: the pid is the server's)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def source_of(revision: str, workdir: Path) -> Path:
    """The package source (``src/``) of a git revision, extracted into ``workdir``; nothing else touched."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {revision} src: {archive.stderr.decode().strip()}")
    target = workdir / f"src-{re.sub(r'[^A-Za-z0-9._-]', '_', revision)}"
    target.mkdir()
    archive_path = target / "src.tar"
    archive_path.write_bytes(archive.stdout)
    with tarfile.open(archive_path) as tar:
        tar.extractall(target, filter="data")
    archive_path.unlink()
    return target / "src"


def start_housing(
    label: str, args: argparse.Namespace, workdir: Path, pythonpath: Path | None, binary: bool
) -> Server:
    port = free_port()
    log_dir = workdir / f"log-{label}"
    cmd = [sys.executable, "-m", "housing.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--model-dir", str(args.model_dir), "--inference-log-dir", str(log_dir)]
    if pythonpath is None:  # this checkout: feedback on (an older revision may not know the flags)
        token, key = feedback_secrets(workdir / f"secrets-{label}")
        cmd += ["--feedback-token-file", str(token), "--feedback-signing-key-file", str(key)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOUSING_LOG_LEVEL": "WARNING"}
    if pythonpath is not None:  # another revision's package shadows this checkout's
        env["PYTHONPATH"] = str(pythonpath)
    with (workdir / f"{label}.log").open("wb") as err:
        proc = subprocess.Popen(
            prioritised(pinned(cmd, 0, args.pin), args.nice), stdout=err, stderr=subprocess.STDOUT, env=env
        )
    base = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{base}/v2/health/ready")
    with urllib.request.urlopen(f"{base}/v1/models") as response:
        name = json.load(response)["models"][0]
    return Server(label, proc, base, name, ours_loads(binary), log_dir)


def start_kserve(
    label: str, flavor: str, model_path: Path, args: argparse.Namespace, workdir: Path
) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        KSERVE_PORT_ENV: str(port),
        KSERVE_MODEL_ENV: str(model_path),
        KSERVE_FLAVOR_ENV: flavor,
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "--kserve-server"]
    with (workdir / f"{label}.log").open("wb") as err:
        proc = subprocess.Popen(
            prioritised(pinned(cmd, 0, args.pin), args.nice),
            stdout=err,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    base = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{base}/v1/models/{KSERVE_NAME}")
    load = Load("V1, 1 row", "/v1/models/{name}:predict", json.dumps({"instances": [ROW]}).encode())
    return Server(label, proc, base, KSERVE_NAME, [load])


def serve_kserve_baseline() -> None:
    """Child process: the KServe SDK V1 server with the ONNX model (the same onnxruntime session options as
    `housing serve`) or the sklearn pipeline (the pre-ONNX way to serve it)."""
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

    model = HousingModel(KSERVE_NAME)
    model.load()
    # Defaults otherwise, minus per-request latency logging and gRPC (a fairer, faster baseline).
    server = kserve.ModelServer(
        http_port=int(os.environ[KSERVE_PORT_ENV]), enable_grpc=False, enable_latency_logging=False, workers=1
    )
    server.start([model])


# --- load generation --------------------------------------------------------------------------------------


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def _lua(load: Load, workdir: Path, index: int) -> Path:
    payload = workdir / f"body-{index}.bin"
    payload.write_bytes(load.body)
    lines = ['wrk.method = "POST"']
    lines += [f'wrk.headers["{key}"] = "{value}"' for key, value in load.headers.items()]
    lines += [f'local f = io.open("{payload}", "rb")', 'wrk.body = f:read("*all")', "f:close()"]
    script = workdir / f"load-{index}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def wrk_run(url: str, script: Path, duration: float, concurrency: int, pin: bool, nice: int) -> Run:
    seconds = max(1, round(duration))
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    cmd = prioritised(pinned(cmd, 1, pin), nice)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    try:
        return _parse_wrk(out.stdout)
    except (AttributeError, ValueError):
        raise SystemExit(f"could not parse wrk output:\n{out.stdout}") from None


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


async def _python_load(url: str, load: Load, duration: float, concurrency: int) -> Run:
    """A keep-alive HTTP/1.1 client for machines without wrk (less accurate: it shares the GIL)."""
    host_port, path = url.removeprefix("http://").split("/", 1)
    host, port = host_port.split(":")
    head = "".join(f"{key}: {value}\r\n" for key, value in load.headers.items())
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {host}\r\n{head}Content-Length: {len(load.body)}\r\n\r\n"
    ).encode() + load.body
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(server: Server, load: Load, args: argparse.Namespace, workdir: Path, duration: float) -> Run:
    url = server.base + load.path.format(name=server.model_name)
    cpu_before = cpu_seconds(server.proc.pid)
    if args.use_wrk:
        run = wrk_run(url, _lua(load, workdir, id(load)), duration, args.concurrency, args.pin, args.nice)
    else:
        run = asyncio.run(_python_load(url, load, duration, args.concurrency))
    run.cpu_us = (cpu_seconds(server.proc.pid) - cpu_before) / max(run.requests, 1) * 1e6
    return run


def median_run(runs: list[Run]) -> Run:
    return Run(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        errors=sum(r.errors for r in runs),
        requests=sum(r.requests for r in runs),
        cpu_us=statistics.median(r.cpu_us for r in runs),
    )


def interleaved(servers: list[Server], args: argparse.Namespace, workdir: Path) -> None:
    """Warm every (server, load) up once, then ``rounds`` rounds in a rotated order."""
    pairs = [(server, load) for server in servers for load in server.loads]
    for server, load in pairs:
        measure(server, load, args, workdir, args.warmup)
    for round_index in range(args.rounds):
        shift = round_index % len(pairs)
        for server, load in pairs[shift:] + pairs[:shift]:
            run = measure(server, load, args, workdir, args.duration)
            server.runs.setdefault(load.label, []).append(run)
            print(
                f"  round {round_index + 1}: {server.label:14s} {load.label:18s} {run.rps:8.0f} req/s "
                f"{run.cpu_us:6.0f} µs CPU/request"
            )


# --- report -----------------------------------------------------------------------------------------------


def _metric(base: str, name: str) -> float | None:
    """The sum over every series of ``name`` (the dropped rows have a ``reason`` label)."""
    with urllib.request.urlopen(f"{base}/metrics") as response:
        text = response.read().decode()
    values = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return sum(map(float, values)) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per (server, load)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--nice", type=int, default=0, help="nice value of servers and wrk (negative needs root)"
    )
    parser.add_argument("--before", default="main", help="git revision to compare with; 'none' to skip")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    parser.add_argument(
        "--sklearn", action="store_true", help="also the KServe server with the sklearn model"
    )
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
        f"load generator: {generator}; concurrency {args.concurrency}; {args.rounds} interleaved rounds x "
        f"{args.duration:g} s per figure (median); servers on core 0, client on core 1: {pinning}"
    )
    if not args.skip_kserve:
        try:
            import kserve  # noqa: F401
        except ImportError:
            print("kserve is not installed (pip install -e '.[bench]'): no KServe baseline, no ratio")
            args.skip_kserve = True

    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        workdir = Path(tmp)
        try:
            print("starting: housing serve (this checkout) ...")
            servers.append(start_housing("after", args, workdir, None, binary=True))
            if args.before != "none":
                print(f"starting: housing serve at {args.before} ...")
                source = source_of(args.before, workdir)
                servers.append(start_housing("before", args, workdir, source, binary=False))
            if not args.skip_kserve:
                print("starting: KServe SDK V1 server + the same ONNX model ...")
                servers.append(start_kserve("kserve-onnx", "onnx", args.model_dir, args, workdir))
                if args.sklearn:
                    if args.sklearn_model.exists():
                        print("starting: KServe SDK V1 server + the sklearn pipeline ...")
                        servers.append(
                            start_kserve("kserve-sklearn", "sklearn", args.sklearn_model, args, workdir)
                        )
                    else:
                        print(f"{args.sklearn_model} missing (dvc repro train): no sklearn baseline")
            interleaved(servers, args, workdir)
            memory = {server.label: rss_mb(server.proc.pid) for server in servers}
            after = servers[0]
            dropped = _metric(after.base, "model_inference_log_dropped_total")
        finally:
            for server in servers:
                stop(server.proc)
        logged = sum(1 for f in after.log_dir.glob("inference-*.jsonl") for _ in f.open("rb"))

    figures = {s.label: {label: median_run(runs) for label, runs in s.runs.items()} for s in servers}
    print(f"\n{'':34s}{'req/s':>10s}{'p50 ms':>9s}{'p99 ms':>9s}{'CPU µs/req':>12s}{'errors':>8s}")
    for server in servers:
        for label, run in figures[server.label].items():
            name = f"{server.label} {label}"
            print(
                f"{name:34s}{run.rps:10.0f}{run.p50_ms:9.2f}{run.p99_ms:9.2f}{run.cpu_us:12.0f}{run.errors:8d}"
            )
    print()
    for label, (rss, peak) in memory.items():
        print(f"RSS {label}: {rss:.0f} MB (peak {peak:.0f} MB)")
    print(f"inference log (after): {logged} rows written, {dropped or 0:.0f} dropped")

    ours = figures["after"]
    single = ours["V1, 1 row"]
    ratios, cpu_ratios = {}, {}
    for other in ("before", "kserve-onnx", "kserve-sklearn"):
        if other in figures:
            theirs = figures[other]["V1, 1 row"]
            ratios[other] = single.rps / theirs.rps
            cpu_ratios[other] = theirs.cpu_us / single.cpu_us
            print(
                f"after vs {other} (V1, 1 row): {ratios[other]:.2f}x the req/s, "
                f"{cpu_ratios[other]:.2f}x less CPU per request"
            )
    if "before" in figures:
        for label in ("V1, 100 rows", "V2, 1 row"):
            mine, theirs = ours[label], figures["before"][label]
            print(
                f"after vs before ({label}): {mine.rps / theirs.rps:.2f}x the req/s, "
                f"{theirs.cpu_us / mine.cpu_us:.2f}x less CPU per request"
            )

    checks = [
        (f"single-row >= {TARGETS['rps']:.0f} req/s", single.rps >= TARGETS["rps"]),
        (
            f"p99 <= {TARGETS['p99_ms']:g} ms at concurrency {args.concurrency}",
            single.p99_ms <= TARGETS["p99_ms"],
        ),
        (f"batch-100 >= {TARGETS['batch_rps']:.0f} req/s", ours["V1, 100 rows"].rps >= TARGETS["batch_rps"]),
        (f"RSS <= {TARGETS['rss_mb']:.0f} MB", memory["after"][1] <= TARGETS["rss_mb"]),
        ("0 errors", sum(run.errors for run in ours.values()) == 0),
    ]
    if "kserve-onnx" in ratios:
        checks.append(
            (
                f">= {TARGETS['ratio_onnx']:g}x the KServe SDK server on the same ONNX model",
                ratios["kserve-onnx"] >= TARGETS["ratio_onnx"],
            )
        )
    print()
    for label, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {label}")
    if args.json:
        report = {
            "figures": {
                server: {label: vars(run) for label, run in runs.items()} for server, runs in figures.items()
            },
            "rounds": {
                s.label: {label: [vars(r) for r in runs] for label, runs in s.runs.items()} for s in servers
            },
            "ratios": ratios,
            "cpu_ratios": cpu_ratios,
            "rss_mb": memory,
            "log_rows": logged,
            "log_dropped": dropped,
            "before": args.before,
            "load_generator": "wrk" if args.use_wrk else "python",
            "pinned": args.pin,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    missed = [label for label, ok in checks if not ok]
    return 1 if missed and not args.no_fail else 0


if __name__ == "__main__":
    sys.exit(main())
