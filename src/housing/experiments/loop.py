"""The closed retraining loop on one machine, offline, in a few minutes (``housing loop`` / ``make loop``).

train champion -> serve it (a real ``housing serve`` process on 127.0.0.1) -> replay baseline then drifted
traffic with delayed ground truth -> drift check on the window built from the inference log, while the
server's rolling MAE gauge degrades -> retrain on the training data plus the labelled window -> register the
challenger (MLflow sqlite store under the work dir) -> serve both (A/B split) -> traffic + feedback -> A/B
analysis -> promote when, and only when, the statistics say ``challenger_wins``.

This module holds the settings (:class:`LoopConfig`) and the order of the steps; the steps are
:mod:`housing.experiments.loop_steps` (each returns a typed result, and the summary is made of them), their
printed lines :mod:`housing.experiments.loop_text`. Everything is written under ``workdir`` (default
``build/loop``): the repository's ``models/``, ``reports/``, ``logs/`` and ``mlflow.db`` are never touched.
Nothing is forced: when drift is not detected the loop stops before retraining, and the verdict is whatever
the A/B analysis says.

Data: the data set is split into training rows and *future production* rows (``production_share``), never
seen by the champion; those are halved into a drift pool (traffic to the champion, which becomes the
retraining window) and an A/B pool (traffic to both models), so the challenger is never tested on houses it
was trained on. The A/B pool before any shift is also the export stage's holdout for both models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field, field_validator

from housing.config import AbTestParams, HGBParams, Params
from housing.experiments import loop_steps as steps
from housing.experiments import loop_text as text
from housing.experiments.traffic import Concurrency, FeedbackShare, Rate, Seconds, Seed, TrafficConfig
from housing.strict import OneLineErrors, Strict
from housing.variants import Variant

Echo = Callable[[str], None]
TOTAL_STEPS = 10

# Settings the loop hands to params it overrides keep those params' own rules (not copies of them).
ChallengerShare = Annotated[float, *AbTestParams.model_fields["expected_challenger_share"].metadata]
Mde = Annotated[float, *AbTestParams.model_fields["mde"].metadata]
MaxIter = Annotated[int | None, *HGBParams.model_fields["max_iter"].metadata]


class LoopConfig(OneLineErrors, Strict):
    """``housing loop``'s settings: field ``x`` is flag ``--x``."""

    setting_name: ClassVar[str] = "loop"

    workdir: Path = Path("build/loop")
    scenario: str = "coastal_boom"  # the world after the shift (housing simulate window --list)
    production_share: float = Field(0.4, ge=0.05, le=0.8)  # of the data set: future production traffic
    baseline_houses: int = Field(300, ge=0)  # un-shifted traffic before the shift
    drift_houses: int = Field(3000, ge=100)  # shifted traffic: the window the challenger is retrained on
    ab_houses: int = Field(2400, ge=100)  # at most this many A/B requests (one house each, never repeated)
    rate: Rate = 300.0
    concurrency: Concurrency = 8
    feedback_share: Annotated[FeedbackShare, Field(gt=0)] = 1.0  # the A/B test needs labels
    feedback_delay: Seconds = 1.0
    challenger_share: ChallengerShare = 0.5  # the lab's 50/50 split
    mde: Mde = 0.15  # minimum detectable MAE effect of the A/B test, relative to the pilot MAE
    max_iter: MaxIter = None  # overrides train.hgb.max_iter (shortened runs)
    seed: Seed = 7
    overlay: Path = Path("k8s/overlays/production")  # named in the printed rollout change
    server_start_timeout: float = Field(60.0, gt=0)

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, value: str) -> str:
        from housing.simulate import SCENARIOS

        if value not in SCENARIOS:
            raise ValueError(f"unknown scenario; valid: {', '.join(SCENARIOS)}")
        return value

    def traffic(self) -> TrafficConfig:
        """The simulator's settings for this loop (each phase sets its URL, request count and seed)."""
        return TrafficConfig(
            rate=self.rate,
            concurrency=self.concurrency,
            feedback_share=self.feedback_share,
            feedback_delay=self.feedback_delay,
            seed=self.seed,
        )

    def ab_params(self, params: Params) -> AbTestParams:
        """params' ``abtest:`` with the router's share, so the analysis checks the sample ratio."""
        return AbTestParams(
            **params.abtest.model_dump() | {"expected_challenger_share": self.challenger_share}
        )


class LoopSteps(Strict):
    """Each step's result; the steps after the drift check are absent when the loop stopped there."""

    data: steps.LoopData
    champion: steps.TrainedModel
    phase1: steps.ChampionTraffic
    drift: steps.DriftCheck
    challenger: steps.TrainedModel | None = None
    plan: steps.AbPlanStep | None = None
    phase2: steps.AbTraffic | None = None
    abtest: steps.AbOutcome | None = None
    promotion: steps.PromotionStep | None = None


class LoopSummary(Strict):
    """``<workdir>/loop_summary.json``."""

    config: LoopConfig
    steps: LoopSteps
    step_seconds: dict[str, float]  # step title -> seconds
    outcome: str  # the verdict, or why the loop stopped
    seconds: float


class StepClock:
    """Announces each step ("[3/10] title (t = 42 s)") and times it."""

    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def begin(self, number: int, title: str) -> None:
        self.end()
        now = time.perf_counter()
        self._current = (title, now)
        self.echo(f"\n[{number}/{TOTAL_STEPS}] {title} (t = {now - self.started:.0f} s)")

    def end(self) -> None:
        if self._current is not None:
            title, began = self._current
            self.seconds[title] = round(time.perf_counter() - began, 1)
            self._current = None

    def lines(self, lines: list[str]) -> None:
        for line in lines:
            self.echo(line)


def run_loop(config: LoopConfig, params: Params, echo: Echo = print) -> LoopSummary:
    """Run every step, echo a readable summary per step, return (and write) the loop summary."""
    clock = StepClock(echo)
    dirs = steps.LoopDirs.create(steps.prepare_workdir(config.workdir))
    results: dict[str, Strict] = {}
    with steps.tracking_store(dirs.root) as uri:
        outcome = _run_steps(config, params, dirs, uri, clock, results)
    clock.end()
    summary = LoopSummary(
        config=config,
        steps=LoopSteps(**results),
        step_seconds=clock.seconds,
        outcome=outcome,
        seconds=round(time.perf_counter() - clock.started, 1),
    )
    path = dirs.root / "loop_summary.json"
    path.write_text(summary.model_dump_json(indent=2))
    echo(f"\nloop finished in {summary.seconds:.0f} s: {outcome} -> {path}")
    return summary


def _run_steps(
    config: LoopConfig, params: Params, dirs: steps.LoopDirs, uri: str, clock: StepClock, results: dict
) -> str:
    """The ten steps in order, each result kept in ``results``; the outcome."""
    from housing.frames import read_csv
    from housing.logwindow import frame_from_log

    replayer = steps.Replayer(params, config.traffic(), config.server_start_timeout)
    clock.begin(1, "data: training rows and future production traffic")
    data = results["data"] = steps.split_data(params, config.production_share, dirs.data)
    clock.lines(text.data(data))

    clock.begin(2, "train the champion and register it @champion")
    train = read_csv(data.paths["train"], [*params.data.features, params.data.target])
    champion = steps.train_and_export(train, data.paths["ab_pool"], params, config.max_iter, dirs.champion)
    champion = results["champion"] = steps.register(
        champion, dirs.champion, params.register_, Variant.CHAMPION
    )
    clock.lines(text.champion(champion, uri))

    clock.begin(3, f"serve the champion; baseline then drifted traffic ({config.scenario})")
    houses = (config.baseline_houses, config.drift_houses)
    phase1 = results["phase1"] = steps.replay_to_champion(
        replayer, dirs, data, config.scenario, houses, config.seed
    )
    clock.lines(text.champion_traffic(phase1, champion))

    clock.begin(4, "drift check on the window built from the inference log")
    window = frame_from_log(dirs.phase1_log, params.data)
    drift = results["drift"] = steps.check_drift(window, data, dirs, params, phase1, champion.holdout_mae)
    clock.lines(text.drift(drift))
    if not drift.retrain_recommended:
        return "stopped: no drift"

    clock.begin(5, "retrain on the training rows + the labelled window")
    frame, labelled = steps.retraining_frame(train, window, params)
    challenger = steps.train_and_export(
        frame, data.paths["ab_pool"], params, config.max_iter, dirs.challenger
    )
    clock.lines(text.challenger(challenger, champion, labelled))

    clock.begin(6, "register the challenger @challenger")
    challenger = results["challenger"] = steps.register(
        challenger, dirs.challenger, params.register_, Variant.CHALLENGER
    )
    clock.lines(text.registered(challenger))

    clock.begin(7, "plan the A/B test from the pilot (the champion's labelled drifted traffic)")
    ab_params = config.ab_params(params)
    plan = results["plan"] = steps.plan_ab_test(
        dirs.phase1_log,
        ab_params,
        mde=config.mde,
        feedback_share=config.feedback_share,
        max_requests=min(config.ab_houses, data.rows["ab_pool"]),
        out=dirs.reports / "abtest_plan.json",
    )
    clock.lines(text.plan(plan))

    share = config.challenger_share
    clock.begin(8, f"serve both (split {1 - share:.0%}/{share:.0%}); traffic")
    phase2 = results["phase2"] = steps.replay_to_both(
        replayer, dirs, data, config.scenario, share, plan.requests_planned, config.seed
    )
    clock.lines(text.ab_traffic(phase2))

    clock.begin(9, "A/B analysis")
    verdict = steps.analyze_ab_test(dirs.phase2_log, ab_params, plan.plan, dirs.reports)
    results["abtest"] = steps.AbOutcome.of(verdict)
    clock.lines(text.verdict(verdict, dirs.reports))

    clock.begin(10, "promotion")
    promotion = results["promotion"] = steps.promote_on_win(
        verdict, dirs.reports / "abtest.json", params.register_, config.overlay
    )
    clock.lines(text.promotion(promotion, verdict))
    return verdict.verdict.value
