"""Drift stage speed on 1M x 8 rows: native tests (scipy K-S + PSI) vs Evidently with the same methods.

Both sides are resampled (with replacement) from the real data set, so every feature keeps its real
marginal distribution; the current side has a drift scenario applied (default: the seed's income shift).
Evidently's import time is measured apart and left out of its run time; HTML rendering is left out too.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/drift_bench.py [--rows 1000000] [--scenario income_shift]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows on each side (reference, current)")
    parser.add_argument("--scenario", default="income_shift", help="drift scenario of the current side")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--repeat", type=int, default=3, help="native runs (the best is reported)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    from housing.config import load_params
    from housing.frames import read_csv
    from housing.ingest import fetch_raw
    from housing.simulate import scenario_window
    from housing.stages.drift import detect_drift, evidently_drift

    params = load_params(args.params)
    features = list(params.data.features)
    # The pipeline's raw file when present, else scikit-learn's cache ($SCIKIT_LEARN_DATA).
    columns = [*features, params.data.target]
    raw = read_csv(params.data.raw_path, columns) if params.data.raw_path.exists() else fetch_raw(params.data)
    reference = scenario_window(raw, "none", args.rows, 1, params.data.target)[features]
    current = scenario_window(raw, args.scenario, args.rows, 2, params.data.target)[features]
    print(f"{args.rows:,} x {len(features)} rows per side, scenario {args.scenario!r}")

    native_times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        native = detect_drift(reference, current, params.drift, features)
        native_times.append(time.perf_counter() - started)
    native_s = min(native_times)

    started = time.perf_counter()
    import evidently.presets  # noqa: F401  (import cost measured apart)

    import_s = time.perf_counter() - started
    started = time.perf_counter()
    verdict = evidently_drift(reference, current, params.drift, features)
    evidently_s = time.perf_counter() - started

    agrees = set(verdict.drifted_features) == set(native.drifted_features)
    numbers = {
        "rows": args.rows,
        "features": len(features),
        "scenario": args.scenario,
        "native_s": round(native_s, 3),
        "evidently_s": round(evidently_s, 3),
        "evidently_import_s": round(import_s, 3),
        "speedup": round(evidently_s / native_s, 1),
        "native_drifted": native.drifted_features,
        "evidently_drifted": verdict.drifted_features,
        "verdicts_match": agrees,
    }
    print(f"native (scipy K-S + PSI)  {native_s:8.2f} s   (best of {args.repeat}: {native_times})")
    print(f"evidently (same methods)  {evidently_s:8.2f} s   (+ {import_s:.1f} s import)")
    print(f"speed-up                  {evidently_s / native_s:8.1f} x")
    print(f"native drifted    {native.drifted_features} (score {native.drift_score:.3f})")
    print(f"evidently drifted {verdict.drifted_features} (share {verdict.drift_share:.3f})")
    print(f"verdicts match: {agrees}")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
