"""Pipeline benchmarks: model quality vs the seed baseline, `dvc repro` cold/warm, ONNX predict latency.

Run with `make bench` (OMP_NUM_THREADS=1). Prints figures, ratios and the targets they are checked against;
exits non-zero when a target is missed. Timings are medians; the machine is shared, so compare ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from housing.artifact import onnx_session  # noqa: E402
from housing.config import load_params  # noqa: E402
from housing.ingest import fetch_raw  # noqa: E402
from housing.metrics import regression_metrics  # noqa: E402
from housing.modelio import onnx_predict, to_onnx_bytes  # noqa: E402
from housing.stages.split import split_frame  # noqa: E402
from housing.stages.train import fit  # noqa: E402

RESULTS: list[tuple[str, bool]] = []


def check(label: str, ok: bool) -> None:
    RESULTS.append((label, ok))
    print(f"  [{'ok' if ok else 'MISSED'}] {label}")


def median_us(fn, calls: int) -> float:
    fn()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def bench_quality(params) -> None:
    from sklearn.ensemble import RandomForestRegressor

    frame = fetch_raw(params.data)
    train, test, _ = split_frame(frame, params.split)
    feats = list(params.data.features)
    X_train, y_train = train[feats].to_numpy(np.float32), train[params.data.target].to_numpy()
    X_test, y_test = test[feats].to_numpy(np.float32), test[params.data.target].to_numpy()
    started = time.perf_counter()
    pipeline, _ = fit(X_train, y_train, params.train)
    fit_s = time.perf_counter() - started
    ours = regression_metrics(y_test, pipeline.predict(X_test), params.evaluate)
    started = time.perf_counter()
    rf = RandomForestRegressor(n_estimators=100, random_state=42, n_jobs=1).fit(X_train, y_train)
    rf_s = time.perf_counter() - started
    base = regression_metrics(y_test, rf.predict(X_test), params.evaluate)
    print("\n== model quality (standard split 80/20, seed 42, test rows never seen in training)")
    label = f"ours  ({params.train.model}+features):"
    print(f"  {label} R2 {ours['r2']:.4f}  MAE {ours['mae']:.4f}  fit {fit_s:.1f}s")
    print(f"  seed baseline (RF, raw features):  R2 {base['r2']:.4f}  MAE {base['mae']:.4f}  fit {rf_s:.1f}s")
    print(f"  MAE ratio ours/baseline: {ours['mae'] / base['mae']:.3f}")
    check(f"R2 {ours['r2']:.4f} >= 0.85", ours["r2"] >= 0.85)
    check(f"MAE {ours['mae']:.4f} <= 0.29", ours["mae"] <= 0.29)

    session = onnx_session(to_onnx_bytes(pipeline, 8, params.export.opset))
    row = X_test[:1]
    input_name = session.get_inputs()[0].name
    raw = median_us(lambda: session.run(None, {input_name: row}), 2000)
    wrapped = median_us(lambda: onnx_predict(session, row), 2000)
    sk = median_us(lambda: pipeline.predict(row), 300)
    print("\n== single-row predict latency (median)")
    print(f"  raw onnxruntime session.run: {raw:8.1f} us")
    print(f"  housing onnx_predict:        {wrapped:8.1f} us  ({wrapped / raw:.2f}x raw)")
    print(f"  sklearn pipeline.predict:    {sk:8.1f} us  ({sk / wrapped:.1f}x slower than ONNX)")
    check(f"ONNX predict within 2x of raw onnxruntime ({wrapped / raw:.2f}x)", wrapped <= 2 * raw)


def bench_repro() -> None:
    print("\n== dvc repro (data present, fresh outputs, fresh MLflow store)")
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "repo"
        files = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for name in files:
            if (ROOT / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dest / name)
        shutil.copytree(ROOT / "data", dest / "data")
        (dest / "dvc.lock").unlink(missing_ok=True)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{dest}/mlflow.db",
            "DVC_NO_ANALYTICS": "1",
            "OMP_NUM_THREADS": "1",
        }
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "copy"]):
            subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)

        def repro() -> float:
            started = time.perf_counter()
            subprocess.run(["dvc", "repro"], cwd=dest, env=env, check=True, capture_output=True)
            return time.perf_counter() - started

        cold = repro()
        warm = statistics.median(repro() for _ in range(3))
    print(f"  cold: {cold:.1f}s   warm no-op (median of 3): {warm:.2f}s")
    check(f"cold dvc repro {cold:.1f}s <= 90s", cold <= 90)
    check(f"warm no-op {warm:.2f}s <= 3s", warm <= 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-repro", action="store_true", help="skip the dvc repro timing")
    args = parser.parse_args()
    os.chdir(ROOT)
    params = load_params(ROOT / "params.yaml")
    bench_quality(params)
    if not args.skip_repro:
        bench_repro()
    missed = [label for label, ok in RESULTS if not ok]
    print(f"\n{len(RESULTS) - len(missed)} of {len(RESULTS)} targets met")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
