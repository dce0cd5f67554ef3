"""The closed retraining loop on one machine, offline, in a few minutes (``housing loop`` / ``make loop``).

train champion -> serve it (a real ``housing serve`` process on 127.0.0.1) -> replay baseline then drifted
traffic with delayed ground truth -> drift check on the window built from the inference log, while the
server's rolling MAE gauge degrades -> retrain on the training data plus the labelled window -> register the
challenger (MLflow sqlite store under the work dir) -> serve both (A/B split) -> traffic + feedback -> A/B
analysis -> promote when, and only when, the statistics say ``challenger_wins``.

Everything is written under ``workdir`` (default ``build/loop``): the repository's ``models/``, ``reports/``,
``logs/`` and ``mlflow.db`` are never touched. The stages are the pipeline's own functions (split, fit,
export, detect_drift, the traffic simulator, the A/B analysis and promotion); nothing is forced: when drift
is not detected the loop stops before retraining, and the verdict comes from :func:`analyze_log`.

Data: the data set is split into training rows and *future production* rows (``production_share``), never
seen by the champion; those are halved into a drift pool (phase 1 traffic, which becomes the retraining
window) and an A/B pool (phase 2 traffic), so the challenger is never tested on houses it was trained on.
The A/B pool before any shift is also the export stage's holdout for both models.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from housing import registry
from housing.errors import ConfigError, HousingError

MARKER = ".housing-loop"  # written into the work dir: only a directory holding it is ever cleaned


class LoopError(HousingError):
    """A loop step could not run (a server did not start, a step's output is missing)."""


@dataclass(frozen=True)
class LoopConfig:
    workdir: Path = Path("build/loop")
    scenario: str = "coastal_boom"  # the world after the shift (housing simulate window --list)
    production_share: float = 0.4  # of the data set, held out as future production traffic
    baseline_houses: int = 300  # un-shifted traffic before the shift
    drift_houses: int = 3000  # shifted traffic: the production window the challenger is retrained on
    ab_houses: int = 2400  # at most this many A/B requests (one house each, never repeated)
    rate: float = 300.0  # requests per second
    concurrency: int = 8
    feedback_share: float = 1.0
    feedback_delay: float = 1.0  # seconds between a prediction and its ground truth
    challenger_share: float = 0.5  # the lab's 50/50 split
    mde: float = 0.15  # minimum detectable MAE effect of the A/B test, relative to the pilot MAE
    max_iter: int | None = None  # override train.hgb.max_iter (shortened runs)
    seed: int = 7
    overlay: Path = Path("k8s/overlays/production")  # for the printed rollout change
    server_start_timeout: float = 60.0

    def __post_init__(self) -> None:
        checks = {
            "production_share": (0.05 <= self.production_share <= 0.8, "must be in [0.05, 0.8]"),
            "baseline_houses": (self.baseline_houses >= 0, "must be at least 0"),
            "drift_houses": (self.drift_houses >= 100, "must be at least 100 (a drift window needs rows)"),
            "ab_houses": (self.ab_houses >= 100, "must be at least 100"),
            "rate": (self.rate > 0, "must be positive"),
            "concurrency": (1 <= self.concurrency <= 64, "must be in [1, 64]"),
            "feedback_share": (0.0 < self.feedback_share <= 1.0, "must be in (0, 1]"),
            "feedback_delay": (self.feedback_delay >= 0, "must be at least 0"),
            "challenger_share": (0.0 < self.challenger_share < 1.0, "must be in (0, 1)"),
            "mde": (self.mde > 0, "must be positive"),
            "max_iter": (self.max_iter is None or self.max_iter >= 1, "must be at least 1"),
        }
        for name, (ok, rule) in checks.items():
            if not ok:
                raise ConfigError(f"loop: --{name.replace('_', '-')}={getattr(self, name)!r}: {rule}")


Echo = Callable[[str], None]


# --- work dir, data ---------------------------------------------------------------------------------------


def prepare_workdir(workdir: Path) -> Path:
    """An empty work dir: created, or cleaned when a previous loop made it; anything else is refused."""
    workdir = workdir.resolve()
    cwd = Path.cwd().resolve()
    if workdir == cwd or workdir in cwd.parents:
        raise ConfigError(f"loop: --workdir {workdir} is the current directory or one of its parents")
    if workdir.exists():
        if not workdir.is_dir():
            raise ConfigError(f"loop: --workdir {workdir} is not a directory")
        if any(workdir.iterdir()) and not (workdir / MARKER).exists():
            raise ConfigError(
                f"loop: --workdir {workdir} is not empty and was not made by `housing loop` (no {MARKER}); "
                "choose another directory"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by `housing loop`; deleted and rebuilt by the next run\n")
    return workdir


def _raw_frame(params: Any):
    from housing.frames import read_csv
    from housing.ingest import fetch_raw

    columns = [*params.data.features, params.data.target]
    if Path(params.data.raw_path).exists():
        return read_csv(params.data.raw_path, columns)[columns].astype(np.float64)
    return fetch_raw(params.data)  # scikit-learn's cache ($SCIKIT_LEARN_DATA), same bytes


def split_data(params: Any, config: LoopConfig, data_dir: Path) -> dict[str, Any]:
    """train / reference / drift pool / A/B pool CSVs under ``data_dir`` (the pipeline's own split)."""
    from housing.config import SplitParams
    from housing.frames import write_csv
    from housing.stages.split import split_frame

    raw = _raw_frame(params)
    split = SplitParams(
        test_size=config.production_share, seed=params.split.seed, reference_rows=params.split.reference_rows
    )
    train, production, reference = split_frame(raw, split)
    production = production.reset_index(drop=True)
    half = len(production) // 2
    parts = {
        "train": train,
        "reference": reference,
        "drift_pool": production.iloc[:half],
        "ab_pool": production.iloc[half:],
    }
    paths = {}
    for name, frame in parts.items():
        paths[name] = data_dir / f"{name}.csv"
        write_csv(frame.reset_index(drop=True), paths[name])
    return {"paths": paths, "rows": {name: len(frame) for name, frame in parts.items()}}


# --- models -----------------------------------------------------------------------------------------------


def train_and_export(
    frame: Any, holdout_csv: Path, params: Any, config: LoopConfig, out_dir: Path
) -> dict[str, Any]:
    """Fit the pipeline on ``frame`` (train.* params), export it to ``out_dir`` with the parity gate."""
    from housing.artifact import sha256_file
    from housing.frames import load_xy, to_csv_bytes
    from housing.stages.export import export_model
    from housing.stages.train import fit

    train_params = params.train
    if config.max_iter is not None:
        hgb = train_params.hgb.model_copy(update={"max_iter": config.max_iter})
        train_params = train_params.model_copy(update={"hgb": hgb})
    features, target = list(params.data.features), params.data.target
    X = frame[features].to_numpy(np.float32)
    y = frame[target].to_numpy(np.float64)
    started = time.perf_counter()
    pipeline, _ = fit(X, y, train_params)
    fit_seconds = round(time.perf_counter() - started, 3)
    X_hold, y_hold = load_xy(holdout_csv, params.data)
    hashes = {"train": hashlib.sha256(to_csv_bytes(frame)).hexdigest(), "test": sha256_file(holdout_csv)}
    metadata = export_model(pipeline, X_hold, y_hold, params, out_dir, hashes)
    return {
        "model_version": metadata.model_version,
        "rows": len(y),
        "fit_seconds": fit_seconds,
        "holdout_mae": round(metadata.metrics["mae"], 4),
        "holdout_r2": round(metadata.metrics["r2"], 4),
    }


@contextlib.contextmanager
def tracking_store(workdir: Path) -> Iterator[str]:
    """Point MLflow (this process) at a sqlite store under the work dir; restore the environment after."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_DISABLE_TELEMETRY")}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    try:
        yield uri
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def register(model_dir: Path, register_params: Any, alias: str) -> dict[str, Any]:
    """Register an artifact in the loop's own store with the pipeline's registration code."""
    import mlflow  # noqa: F401 - configures its loggers on import; quieten them after that

    from housing.registry import register_model

    for noisy in ("mlflow", "alembic"):  # table creation and registration chatter would drown the summary
        logging.getLogger(noisy).setLevel(logging.WARNING)
    result = register_model(model_dir, register_params, alias, extra_tags={"source": "housing loop"})
    return result.model_dump(mode="json")


# --- the model server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A real ``housing serve`` subprocess on 127.0.0.1 (a free port), stopped with SIGTERM."""

    def __init__(self, args: list[str], log_path: Path, timeout: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = [sys.executable, "-m", "housing.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen([*cmd, *args], stdout=out, stderr=subprocess.STDOUT, env=env)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LoopError(f"model server exited with {self.proc.returncode}: {self.tail()}")
            ready = f"{self.url}/v2/health/ready"
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
                urllib.request.urlopen(ready, timeout=1) as response,  # noqa: S310  # nosec B310
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise LoopError(f"model server not ready within {timeout:g} s: {self.tail()}")

    def tail(self, lines: int = 5) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(no output)"

    def gauges(self) -> dict[str, dict[str, float]]:
        """Rolling scores per variant from /metrics: {variant: {"mae": .., "r2": .., "feedback": ..}}."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:  # noqa: S310  # nosec B310
            text = response.read().decode()
        wanted = {"model_mae_score": "mae", "model_r2_score": "r2", "model_feedback_total": "feedback"}
        out: dict[str, dict[str, float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in wanted:
                    out.setdefault(sample.labels["variant"], {})[wanted[sample.name]] = float(sample.value)
        return out

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@contextlib.contextmanager
def serving(args: list[str], log_path: Path, timeout: float) -> Iterator[ServerProcess]:
    server = ServerProcess(args, log_path, timeout)
    try:
        yield server
    finally:
        server.stop()


def send_traffic(
    server: ServerProcess, csv: Path, params: Any, config: LoopConfig, scenario: str, houses: int, seed: int
) -> dict[str, Any]:
    """``housing simulate traffic``'s functions: one house per request, delayed feedback."""
    from housing.experiments.traffic import TrafficConfig, load_houses, run_traffic

    chosen = load_houses(csv, params.data, scenario=scenario, houses=houses, needed=houses, seed=seed)
    traffic = TrafficConfig(
        url=server.url,
        rate=config.rate,
        requests=len(chosen),
        duration=max(60.0, 3 * len(chosen) / config.rate),
        concurrency=config.concurrency,
        feedback_share=config.feedback_share,
        feedback_delay=config.feedback_delay,
        seed=seed,
    )
    summary = asyncio.run(run_traffic(traffic, chosen))
    failed = summary["requests_sent"] - summary["ok"]
    if failed:
        raise LoopError(
            f"traffic to {server.url}: {failed} of {summary['requests_sent']} requests failed {summary}"
        )
    return summary


def _fmt(value: float | None, digits: int = 3) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


# --- the loop ---------------------------------------------------------------------------------------------


def run_loop(config: LoopConfig, params: Any, echo: Echo = print) -> dict[str, Any]:
    """Run every step, echo a readable summary per step, return (and write) the loop summary."""
    import pandas as pd

    from housing.config import DriftParams
    from housing.experiments.abtest import analyze_log, estimate_planning_inputs, make_plan
    from housing.experiments.abtest_report import render_markdown
    from housing.experiments.promotion import promote_verdict
    from housing.frames import read_csv
    from housing.logwindow import frame_from_log
    from housing.simulate import SCENARIOS
    from housing.stages.drift import detect_drift

    if config.scenario not in SCENARIOS:
        raise ConfigError(f"loop: scenario {config.scenario!r} is unknown; valid: {', '.join(SCENARIOS)}")
    started = time.perf_counter()
    workdir = prepare_workdir(config.workdir)
    dirs = {
        name: workdir / name for name in ("data", "champion", "challenger", "logs", "reports", "mlartifacts")
    }
    for directory in dirs.values():
        directory.mkdir()
    summary: dict[str, Any] = {
        "config": {k: str(v) for k, v in asdict(config).items()},
        "steps": {},
        "step_seconds": {},
    }
    steps = summary["steps"]
    total = 10
    current: list[Any] = []  # (title, started) of the step in progress

    def step(number: int, title: str) -> None:
        now = time.perf_counter()
        if current:
            summary["step_seconds"][current[0]] = round(now - current[1], 1)
        current[:] = [title, now]
        echo(f"\n[{number}/{total}] {title} (t = {now - started:.0f} s)")

    def finish(outcome: str) -> dict[str, Any]:
        if current:
            summary["step_seconds"][current[0]] = round(time.perf_counter() - current[1], 1)
        return _finish(summary, workdir, started, outcome, echo)

    features, target = list(params.data.features), params.data.target
    register_params = params.register_

    with tracking_store(workdir) as uri:
        step(1, "data: training rows and future production traffic")
        data = split_data(params, config, dirs["data"])
        paths = data["paths"]
        steps["data"] = data["rows"]
        echo(
            f"  train {data['rows']['train']} rows (reference sample {data['rows']['reference']}); future "
            f"production: drift pool {data['rows']['drift_pool']}, A/B pool {data['rows']['ab_pool']} houses "
            f"(disjoint; the A/B pool before the shift is the export holdout)"
        )

        step(2, "train the champion and register it @champion")
        train = read_csv(paths["train"], [*features, target])
        champion = train_and_export(train, paths["ab_pool"], params, config, dirs["champion"])
        champion["registry"] = register(dirs["champion"], register_params, "champion")
        steps["champion"] = champion
        echo(
            f"  {champion['model_version']}: {champion['rows']} rows, fit {champion['fit_seconds']:.1f} s, "
            f"holdout MAE {champion['holdout_mae']:.3f} R² {champion['holdout_r2']:.3f}; MLflow version "
            f"{champion['registry']['version']} @champion ({uri})"
        )

        step(3, f"serve the champion; baseline then drifted traffic ({config.scenario})")
        phase1_log = dirs["logs"] / "phase1"
        serve_args = ["--model-dir", str(dirs["champion"]), "--inference-log-dir", str(phase1_log)]
        with serving(serve_args, workdir / "server-phase1.log", config.server_start_timeout) as server:
            phase1: dict[str, Any] = {"url": server.url}
            if config.baseline_houses:
                traffic = send_traffic(
                    server, paths["drift_pool"], params, config, "none", config.baseline_houses, config.seed
                )
                phase1["baseline_traffic"] = traffic
                phase1["baseline_gauges"] = server.gauges().get("champion", {})
                echo(
                    f"  baseline: {traffic['ok']} requests at {traffic['achieved_rate']} req/s, "
                    f"{traffic['feedback']['accepted']} labels; MAE gauge "
                    f"{_fmt(phase1['baseline_gauges'].get('mae'))}"
                )
            traffic = send_traffic(
                server,
                paths["drift_pool"],
                params,
                config,
                config.scenario,
                config.drift_houses,
                config.seed + 1,
            )
            phase1["drift_traffic"] = traffic
            phase1["drift_gauges"] = server.gauges().get("champion", {})
        steps["phase1"] = phase1
        echo(
            f"  drifted: {traffic['ok']} requests at {traffic['achieved_rate']} req/s, "
            f"{traffic['feedback']['accepted']} labels after {config.feedback_delay:g} s; MAE gauge "
            f"{_fmt(phase1['drift_gauges'].get('mae'))} (R² {_fmt(phase1['drift_gauges'].get('r2'))}); "
            f"training-time holdout MAE {champion['holdout_mae']:.3f}"
        )

        step(4, "drift check on the window built from the inference log")
        window = frame_from_log(phase1_log, params.data)
        reference = read_csv(paths["reference"], features)
        drift_cfg: DriftParams = params.drift
        result = detect_drift(
            reference, window, drift_cfg, features, sources=(str(paths["reference"]), str(phase1_log))
        )
        drift_doc = result.to_dict(None)
        (dirs["reports"] / "drift.json").write_text(json.dumps(drift_doc, indent=2))
        mae_before = phase1.get("baseline_gauges", {}).get("mae", champion["holdout_mae"])
        mae_after = phase1["drift_gauges"].get("mae", float("nan"))
        degraded = bool(mae_after > mae_before)
        steps["drift"] = {
            "window_rows": len(window),
            "labelled_rows": int(window[target].notna().sum()),
            "drift_score": drift_doc["drift_score"],
            "threshold": drift_doc["threshold"],
            "drifted_features": drift_doc["drifted_features"],
            "retrain_recommended": drift_doc["retrain_recommended"],
            "mae_gauge_before": mae_before,
            "mae_gauge_after": mae_after,
            "performance_degraded": degraded,
        }
        echo(
            f"  window {len(window)} rows ({steps['drift']['labelled_rows']} labelled): drift score "
            f"{drift_doc['drift_score']:.3f} (threshold {drift_doc['threshold']}), drifted "
            f"{', '.join(drift_doc['drifted_features']) or 'none'} -> retrain_recommended="
            f"{str(drift_doc['retrain_recommended']).lower()}; MAE gauge {_fmt(mae_before)} -> "
            f"{_fmt(mae_after)}"
        )
        if not drift_doc["retrain_recommended"]:
            echo("  no retraining recommended: the loop stops here (nothing to test)")
            return finish("stopped: no drift")

        step(5, "retrain on the training rows + the labelled window")
        # Sorted: the log's row order depends on request timing, and the fit must not (same rows, same model).
        labelled = window.dropna(subset=[target]).sort_values([*features, target], kind="mergesort")
        retrain_frame = pd.concat([train, labelled[[*features, target]]], ignore_index=True)
        challenger = train_and_export(retrain_frame, paths["ab_pool"], params, config, dirs["challenger"])
        steps["challenger"] = challenger
        echo(
            f"  {challenger['model_version']}: {challenger['rows']} rows ({len(labelled)} from the window), "
            f"fit {challenger['fit_seconds']:.1f} s; holdout (pre-shift A/B pool) MAE "
            f"{challenger['holdout_mae']:.3f} vs champion {champion['holdout_mae']:.3f} (pre-shift world, "
            "not what the A/B test measures)"
        )

        step(6, "register the challenger @challenger")
        registered = register(dirs["challenger"], register_params, "challenger")
        challenger["registry"] = registered
        echo(f"  MLflow version {registered['version']} @challenger ({registered['model_version']})")

        step(7, "plan the A/B test from the pilot (the champion's labelled drifted traffic)")
        ab_params = params.abtest.model_copy(update={"expected_challenger_share": config.challenger_share})
        pilot = estimate_planning_inputs(phase1_log, ab_params)
        plan = make_plan(
            ab_params, mde=config.mde, mde_kind="relative", baseline_mae=pilot["mae"], sd=pilot["sd"]
        )
        (dirs["reports"] / "abtest_plan.json").write_text(json.dumps(plan.to_dict(), indent=2))
        requests_needed = math.ceil(
            plan.n_per_arm / min(config.challenger_share, 1 - config.challenger_share)
        )
        requests_needed = math.ceil(requests_needed * 1.08 / config.feedback_share)  # split noise margin
        ab_requests = min(config.ab_houses, data["rows"]["ab_pool"])
        steps["plan"] = {**plan.to_dict(), "pilot": pilot, "requests_planned": ab_requests}
        echo(
            f"  pilot: MAE {pilot['mae']:.3f}, sd of |error| {pilot['sd']:.3f} over {pilot['n']} labelled "
            "requests"
        )
        echo(f"  {plan.describe()}")
        if ab_requests < requests_needed:
            echo(
                f"  warning: {ab_requests} A/B houses may not reach the horizon (~{requests_needed} requests "
                "needed): the verdict may stay 'collecting'"
            )
        else:
            ab_requests = min(ab_requests, requests_needed)
        echo(f"  sending {ab_requests} requests (one new house each)")

        step(
            8, f"serve both (split {1 - config.challenger_share:.0%}/{config.challenger_share:.0%}); traffic"
        )
        phase2_log = dirs["logs"] / "phase2"
        serve_args = [
            "--model-dir",
            str(dirs["champion"]),
            "--challenger-model-dir",
            str(dirs["challenger"]),
            "--ab-mode",
            "split",
            "--challenger-share",
            str(config.challenger_share),
            "--ab-salt",
            f"loop-{config.seed}",
            "--inference-log-dir",
            str(phase2_log),
        ]
        with serving(serve_args, workdir / "server-phase2.log", config.server_start_timeout) as server:
            traffic = send_traffic(
                server, paths["ab_pool"], params, config, config.scenario, ab_requests, config.seed + 2
            )
            gauges = server.gauges()
        steps["phase2"] = {"traffic": traffic, "gauges": gauges}
        echo(
            f"  {traffic['ok']} requests at {traffic['achieved_rate']} req/s, variants "
            f"{traffic['variants']}, {traffic['feedback']['accepted']} labels; MAE gauges: champion "
            f"{_fmt(gauges.get('champion', {}).get('mae'))}, challenger "
            f"{_fmt(gauges.get('challenger', {}).get('mae'))}"
        )

        step(9, "A/B analysis")
        verdict = analyze_log(phase2_log, ab_params, plan)
        verdict_path = dirs["reports"] / "abtest.json"
        verdict_path.write_text(json.dumps(verdict, indent=2))
        (dirs["reports"] / "abtest.md").write_text(render_markdown(verdict))
        primary = verdict.get("primary") or {}
        steps["abtest"] = {
            "verdict": verdict["verdict"],
            "reason": verdict["reason"],
            "design": verdict["design"],
            "n_champion": verdict["progress"]["n_champion"],
            "n_challenger": verdict["progress"]["n_challenger"],
            "horizon_per_arm": verdict["progress"]["required_per_arm"],
            "mae_champion": primary.get("mae_champion"),
            "mae_challenger": primary.get("mae_challenger"),
            "difference": primary.get("difference"),
            "ci": [primary.get("ci_low"), primary.get("ci_high")],
            "p_value": primary.get("p_value"),
            "guardrails": {g["name"]: g["passed"] for g in verdict["guardrails"]},
            "warnings": verdict["warnings"],
        }
        echo(f"  {verdict['verdict']}: {verdict['reason']}")
        if primary:
            echo(
                f"  first {primary['n_champion']}/{primary['n_challenger']} per arm: MAE champion "
                f"{primary['mae_champion']:.4f}, challenger {primary['mae_challenger']:.4f}, difference "
                f"{primary['difference']:.4f} ({primary['ci_level']:.0%} CI {primary['ci_low']:.4f} .. "
                f"{primary['ci_high']:.4f}), {primary['test']} p = {primary['p_value']:.3g}; guardrails "
                + ", ".join(f"{g['name']} {'ok' if g['passed'] else 'FAILED'}" for g in verdict["guardrails"])
            )
        for warning in verdict["warnings"]:
            echo(f"  warning: {warning}")
        echo(f"  -> {verdict_path}, {dirs['reports'] / 'abtest.md'}")

        step(10, "promotion")
        if verdict["verdict"] == "challenger_wins":
            promoted = promote_verdict(verdict_path, register_params, overlay=config.overlay)
            champion_now = registry.alias_version(register_params, "champion")
            steps["promotion"] = {
                "promoted": bool(promoted["registry"].get("promoted")),
                "champion_version": champion_now,
                "previous": promoted["registry"].get("previous"),
                "model_version": promoted["model_version"],
                "rollout": promoted["rollout"],
            }
            echo(
                f"  @champion -> MLflow version {champion_now} ({promoted['model_version']}), previous "
                f"{promoted['registry'].get('previous')}; rollout change to review:"
            )
            for line in promoted["rollout"].splitlines():
                echo(f"    {line}")
        else:
            steps["promotion"] = {
                "promoted": False,
                "champion_version": registry.alias_version(register_params, "champion"),
            }
            echo(f"  not promoted: the verdict is {verdict['verdict']!r}; @champion stays")
    return finish(verdict["verdict"])


def _finish(
    summary: dict[str, Any], workdir: Path, started: float, outcome: str, echo: Echo
) -> dict[str, Any]:
    summary["outcome"] = outcome
    summary["seconds"] = round(time.perf_counter() - started, 1)
    path = workdir / "loop_summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    echo(f"\nloop finished in {summary['seconds']:.0f} s: {outcome} -> {path}")
    return summary
