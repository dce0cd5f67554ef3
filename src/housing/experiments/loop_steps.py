"""The closed loop's steps (:mod:`housing.experiments.loop` runs them in order), each a function of its
inputs returning a typed result; the loop summary is made of these results.

The steps are the pipeline's own code: the split stage's ``split_frame``, ``fit`` and ``export_model``,
``detect_drift``, the traffic simulator, the A/B analysis and promotion; the model server is a real
``housing serve`` process (:mod:`housing.server_process`). numpy and pandas are imported by the functions
(the CLI imports the loop's settings at start-up).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from housing.config import AbTestParams, Params, RegisterParams
from housing.errors import ConfigError, HousingError
from housing.experiments.traffic import TrafficConfig, TrafficSummary
from housing.experiments.verdict import AbVerdict, PilotEstimate, Plan, Verdict
from housing.results import DriftReport, RegisterResult
from housing.server_process import ServerProcess, VariantScores, start_server
from housing.strict import Strict
from housing.variants import Variant

if TYPE_CHECKING:
    import pandas as pd

MARKER = ".housing-loop"  # written into the work dir: only a directory holding it is ever cleaned
POOLS = ("train", "reference", "drift_pool", "ab_pool")


class LoopError(HousingError):
    """A loop step could not go on: its traffic to a model server failed (a server that does not start is a
    :class:`~housing.server_process.ServerStartError`)."""


# --- the work dir -----------------------------------------------------------------------------------------


class LoopDirs(Strict):
    """Where each step writes, under the work dir."""

    root: Path
    data: Path
    champion: Path
    challenger: Path
    logs: Path
    reports: Path
    mlartifacts: Path

    @property
    def phase1_log(self) -> Path:
        """The inference log of the champion's traffic (step 3): the drift window and the A/B pilot."""
        return self.logs / "phase1"

    @property
    def phase2_log(self) -> Path:
        """The inference log of the A/B traffic (step 8)."""
        return self.logs / "phase2"

    @classmethod
    def create(cls, workdir: Path) -> LoopDirs:
        names = [name for name in cls.model_fields if name != "root"]
        dirs = cls(root=workdir, **{name: workdir / name for name in names})
        for name in names:
            getattr(dirs, name).mkdir()
        return dirs


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


# --- step 1: data -----------------------------------------------------------------------------------------


class LoopData(Strict):
    """Training rows and the future production houses, as CSVs; the pools are disjoint."""

    paths: dict[str, Path]  # POOLS -> CSV
    rows: dict[str, int]


def _raw_frame(params: Params) -> pd.DataFrame:
    import numpy as np

    from housing.frames import read_csv
    from housing.ingest import fetch_raw

    columns = [*params.data.features, params.data.target]
    if Path(params.data.raw_path).exists():
        return read_csv(params.data.raw_path, columns)[columns].astype(np.float64)
    return fetch_raw(params.data)  # scikit-learn's cache ($SCIKIT_LEARN_DATA), same bytes


def split_data(params: Params, production_share: float, data_dir: Path) -> LoopData:
    """train / reference / drift pool / A/B pool CSVs under ``data_dir`` (the split stage's own split):
    ``production_share`` of the rows are future production traffic, halved into the two pools."""
    from housing.config import SplitParams
    from housing.frames import write_csv
    from housing.stages.split import split_frame

    raw = _raw_frame(params)
    split = SplitParams(
        test_size=production_share, seed=params.split.seed, reference_rows=params.split.reference_rows
    )
    train, production, reference = split_frame(raw, split)
    production = production.reset_index(drop=True)
    half = len(production) // 2
    frames = dict(zip(POOLS, (train, reference, production.iloc[:half], production.iloc[half:]), strict=True))
    paths = {name: data_dir / f"{name}.csv" for name in POOLS}
    for name, frame in frames.items():
        write_csv(frame.reset_index(drop=True), paths[name])
    return LoopData(paths=paths, rows={name: len(frame) for name, frame in frames.items()})


# --- steps 2, 5, 6: models --------------------------------------------------------------------------------


class TrainedModel(Strict):
    model_version: str
    rows: int
    fit_seconds: float
    holdout_mae: float
    holdout_r2: float
    registry: RegisterResult | None = None  # once registered


def train_and_export(
    frame: pd.DataFrame, holdout_csv: Path, params: Params, max_iter: int | None, out_dir: Path
) -> TrainedModel:
    """Fit the pipeline on ``frame`` (train.* params, ``max_iter`` overriding train.hgb's), export it to
    ``out_dir`` with the export stage's parity gate, the holdout being ``holdout_csv``."""
    import numpy as np

    from housing.artifact import sha256_file
    from housing.frames import load_xy, to_csv_bytes
    from housing.stages.export import export_model
    from housing.stages.train import fit

    train_params = params.train
    if max_iter is not None:  # LoopConfig checks it with train.hgb.max_iter's own rule
        train_params = train_params.model_copy(
            update={"hgb": train_params.hgb.model_copy(update={"max_iter": max_iter})}
        )
    features, target = list(params.data.features), params.data.target
    started = time.perf_counter()
    pipeline, _ = fit(frame[features].to_numpy(np.float32), frame[target].to_numpy(np.float64), train_params)
    fit_seconds = round(time.perf_counter() - started, 3)
    X_hold, y_hold = load_xy(holdout_csv, params.data)
    hashes = {"train": hashlib.sha256(to_csv_bytes(frame)).hexdigest(), "test": sha256_file(holdout_csv)}
    metadata = export_model(pipeline, X_hold, y_hold, params, out_dir, hashes)
    return TrainedModel(
        model_version=metadata.model_version,
        rows=len(frame),
        fit_seconds=fit_seconds,
        holdout_mae=round(metadata.metrics["mae"], 4),
        holdout_r2=round(metadata.metrics["r2"], 4),
    )


def register(
    model: TrainedModel, model_dir: Path, register_params: RegisterParams, alias: Variant
) -> TrainedModel:
    """Register an exported model in the loop's own store with the pipeline's registration code."""
    import mlflow  # noqa: F401 - configures its loggers on import; quieten them after that

    from housing.registry import register_model

    for noisy in ("mlflow", "alembic"):  # table creation and registration chatter would drown the summary
        logging.getLogger(noisy).setLevel(logging.WARNING)
    result = register_model(model_dir, register_params, alias, extra_tags={"source": "housing loop"})
    return model.model_copy(update={"registry": result})


def retraining_frame(train: pd.DataFrame, window: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, int]:
    """The training rows plus the window's labelled rows; (frame, labelled rows)."""
    import pandas as pd

    features, target = list(params.data.features), params.data.target
    # Sorted: the log's row order depends on request timing, and the fit must not (same rows, same model).
    labelled = window.dropna(subset=[target]).sort_values([*features, target], kind="mergesort")
    return pd.concat([train, labelled[[*features, target]]], ignore_index=True), len(labelled)


# --- steps 3, 8: traffic against a real server ------------------------------------------------------------


@dataclass(frozen=True)
class Replayer:
    """What steps 3 and 8 share: a real ``housing serve`` process, and houses replayed to it with
    ``housing simulate traffic``'s functions (one house per request, delayed feedback)."""

    params: Params
    traffic: TrafficConfig  # rate, concurrency, feedback; each replay sets the URL, request count and seed
    start_timeout: float

    def serve(self, output: Path, log_dir: Path, *args: str) -> ServerProcess:
        return start_server(output, *args, log_dir=log_dir, timeout=self.start_timeout)

    def send(self, server: ServerProcess, csv: Path, scenario: str, houses: int, seed: int) -> TrafficSummary:
        """``houses`` houses of ``csv`` shifted by ``scenario``; every request must succeed."""
        import asyncio

        from housing.experiments.traffic import load_houses, run_traffic

        chosen = load_houses(
            csv, self.params.data, scenario=scenario, houses=houses, needed=houses, seed=seed
        )
        duration = max(60.0, 3 * len(chosen) / self.traffic.rate)
        update = {
            "url": server.url,
            "requests": len(chosen),
            "duration": duration,
            "seed": seed,
            "feedback_token_file": server.feedback_token_file,
        }
        summary = asyncio.run(run_traffic(TrafficConfig(**self.traffic.model_dump() | update), chosen))
        failed = summary.requests_sent - summary.ok
        if failed:
            raise LoopError(
                f"traffic to {server.url}: {failed} of {summary.requests_sent} requests failed "
                f"(HTTP {summary.failed}, {summary.transport_errors} transport errors)"
            )
        return summary


class ChampionTraffic(Strict):
    """Step 3: un-shifted then drifted traffic to the champion; the server's rolling scores after each."""

    url: str
    baseline_traffic: TrafficSummary | None
    baseline_gauges: VariantScores | None
    drift_traffic: TrafficSummary
    drift_gauges: VariantScores


def replay_to_champion(
    replayer: Replayer, dirs: LoopDirs, data: LoopData, scenario: str, houses: tuple[int, int], seed: int
) -> ChampionTraffic:
    """Serve the champion (log: ``dirs.phase1_log``); send ``houses[0]`` un-shifted then ``houses[1]`` shifted
    houses of the drift pool (seeds ``seed`` and ``seed + 1``)."""
    pool = data.paths["drift_pool"]
    output = dirs.root / "server-phase1.log"
    with replayer.serve(output, dirs.phase1_log, "--model-dir", str(dirs.champion)) as server:
        baseline = baseline_scores = None
        if houses[0]:
            baseline = replayer.send(server, pool, "none", houses[0], seed)
            baseline_scores = server.gauges().get(Variant.CHAMPION, VariantScores())
        drifted = replayer.send(server, pool, scenario, houses[1], seed + 1)
        drifted_scores = server.gauges().get(Variant.CHAMPION, VariantScores())
    return ChampionTraffic(
        url=server.url,
        baseline_traffic=baseline,
        baseline_gauges=baseline_scores,
        drift_traffic=drifted,
        drift_gauges=drifted_scores,
    )


class AbTraffic(Strict):
    """Step 8: A/B traffic to both models (split mode), with the server's per-variant rolling scores."""

    traffic: TrafficSummary
    gauges: dict[Variant, VariantScores]


def replay_to_both(
    replayer: Replayer,
    dirs: LoopDirs,
    data: LoopData,
    scenario: str,
    challenger_share: float,
    requests: int,
    seed: int,
) -> AbTraffic:
    """Serve champion and challenger split by routing key, salt ``loop-<seed>`` (log: ``dirs.phase2_log``);
    send ``requests`` new houses of the A/B pool shifted by ``scenario`` (seed ``seed + 2``)."""
    ab_args = [
        *("--model-dir", str(dirs.champion), "--challenger-model-dir", str(dirs.challenger)),
        *("--ab-mode", "split", "--challenger-share", str(challenger_share), "--ab-salt", f"loop-{seed}"),
    ]
    with replayer.serve(dirs.root / "server-phase2.log", dirs.phase2_log, *ab_args) as server:
        summary = replayer.send(server, data.paths["ab_pool"], scenario, requests, seed + 2)
        gauges = server.gauges()
    return AbTraffic(traffic=summary, gauges=gauges)


# --- step 4: drift ----------------------------------------------------------------------------------------


class DriftCheck(Strict):
    """Step 4: the drift stage's test on the window the server logged, and the live MAE gauge around it."""

    window_rows: int
    labelled_rows: int
    drift_score: float
    threshold: float
    drifted_features: list[str]
    retrain_recommended: bool
    mae_gauge_before: float | None  # baseline traffic's (else the training-time holdout MAE)
    mae_gauge_after: float | None
    performance_degraded: bool


def check_drift(
    window: pd.DataFrame,
    data: LoopData,
    dirs: LoopDirs,
    params: Params,
    phase1: ChampionTraffic,
    holdout_mae: float,
) -> DriftCheck:
    """``detect_drift`` (params' ``drift:``) of the logged window against the reference sample; the drift
    report goes to ``reports/drift.json``. Without baseline traffic, "before" is the holdout MAE."""
    from housing.artifact import atomic_write_json
    from housing.frames import read_csv
    from housing.stages.drift import detect_drift

    features = list(params.data.features)
    reference_csv = data.paths["reference"]
    sources = (str(reference_csv), str(dirs.phase1_log))
    result = detect_drift(read_csv(reference_csv, features), window, params.drift, features, sources=sources)
    report = DriftReport.model_validate(result.to_dict(None))
    atomic_write_json(dirs.reports / "drift.json", report.model_dump(mode="json"))
    before = phase1.baseline_gauges.mae if phase1.baseline_gauges else None
    before = holdout_mae if before is None else before
    after = phase1.drift_gauges.mae
    return DriftCheck(
        window_rows=len(window),
        labelled_rows=int(window[params.data.target].notna().sum()),
        drift_score=report.drift_score,
        threshold=report.threshold,
        drifted_features=report.drifted_features,
        retrain_recommended=report.retrain_recommended,
        mae_gauge_before=before,
        mae_gauge_after=after,
        performance_degraded=after is not None and after > before,
    )


# --- step 7: plan -----------------------------------------------------------------------------------------


class AbPlanStep(Strict):
    """Step 7: the A/B horizon planned from the pilot (the champion's labelled drifted traffic)."""

    pilot: PilotEstimate
    plan: Plan
    requests_needed: int  # to reach the horizon on both arms, with a margin for the split's noise
    requests_planned: int  # what will be sent: at most the A/B pool's houses
    reaches_horizon: bool


def plan_ab_test(
    pilot_log: Path,
    ab_params: AbTestParams,
    *,
    mde: float,
    feedback_share: float,
    max_requests: int,
    out: Path,
) -> AbPlanStep:
    """Power analysis with MDE ``mde`` relative to the pilot's MAE; at most ``max_requests`` new houses."""
    from housing.experiments.abtest import estimate_planning_inputs, make_plan
    from housing.experiments.verdict import write_json

    pilot = estimate_planning_inputs(pilot_log, ab_params)
    plan = make_plan(ab_params, mde=mde, mde_kind="relative", baseline_mae=pilot.mae, sd=pilot.sd)
    write_json(out, plan)
    share = ab_params.expected_challenger_share or 0.5
    needed = math.ceil(plan.n_per_arm / min(share, 1 - share))
    needed = math.ceil(needed * 1.08 / feedback_share)  # split noise margin
    return AbPlanStep(
        pilot=pilot,
        plan=plan,
        requests_needed=needed,
        requests_planned=min(max_requests, needed),
        reaches_horizon=max_requests >= needed,
    )


# --- step 9: the verdict ----------------------------------------------------------------------------------


def analyze_ab_test(log_dir: Path, ab_params: AbTestParams, plan: Plan, reports_dir: Path) -> AbVerdict:
    """``abtest.analyze_log`` with the plan fixed up front; the verdict as JSON and markdown."""
    from housing.experiments.abtest import analyze_log
    from housing.experiments.abtest_report import write_verdict

    verdict = analyze_log(log_dir, ab_params, plan)
    write_verdict(verdict, reports_dir / "abtest.json", reports_dir / "abtest.md")
    return verdict


class AbOutcome(Strict):
    """Step 9 in the loop summary: the verdict and the numbers that decided it."""

    verdict: Verdict
    reason: str
    design: str
    n_champion: int
    n_challenger: int
    horizon_per_arm: int
    mae_champion: float | None
    mae_challenger: float | None
    difference: float | None
    ci: tuple[float | None, float | None]
    p_value: float | None
    guardrails: dict[str, bool]
    warnings: list[str]

    @classmethod
    def of(cls, verdict: AbVerdict) -> AbOutcome:
        primary = verdict.primary
        return cls(
            verdict=verdict.verdict,
            reason=verdict.reason,
            design=verdict.design,
            n_champion=verdict.progress.n_champion,
            n_challenger=verdict.progress.n_challenger,
            horizon_per_arm=verdict.progress.required_per_arm,
            mae_champion=primary.mae_champion if primary else None,
            mae_challenger=primary.mae_challenger if primary else None,
            difference=primary.difference if primary else None,
            ci=(primary.ci_low, primary.ci_high) if primary else (None, None),
            p_value=primary.p_value if primary else None,
            guardrails={rail.name: rail.passed for rail in verdict.guardrails},
            warnings=verdict.warnings,
        )


# --- step 10: promotion -----------------------------------------------------------------------------------


class PromotionStep(Strict):
    promoted: bool
    champion_version: str | None  # @champion after this step
    previous: str | None = None
    model_version: str | None = None
    rollout: str | None = None  # the k8s change to review


def promote_on_win(
    verdict: AbVerdict, verdict_path: Path, register_params: RegisterParams, overlay: Path
) -> PromotionStep:
    """``promotion.apply_verdict`` when, and only when, the verdict is ``challenger_wins``."""
    from housing import registry
    from housing.experiments.promotion import apply_verdict

    if verdict.verdict is not Verdict.CHALLENGER_WINS:
        return PromotionStep(
            promoted=False, champion_version=registry.alias_version(register_params, Variant.CHAMPION)
        )
    promoted = apply_verdict(verdict, verdict_path, register_params, overlay=overlay)
    decision: dict[str, Any] = promoted.registry or {}
    return PromotionStep(
        promoted=bool(decision.get("promoted")),
        # promote(force=True) either moved @champion to the candidate or found it already there
        champion_version=decision.get("candidate"),
        previous=decision.get("previous"),
        model_version=promoted.model_version,
        rollout=promoted.rollout,
    )
