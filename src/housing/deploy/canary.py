"""Canary controller for a KServe InferenceService: ``housing canary``.

For each step (default 10 -> 50 -> 100 %): patch ``canaryTrafficPercent``, wait until the canary revision is
ready and receives that share (status conditions + traffic, with a timeout), then analyse Prometheus
metrics of canary vs stable for a window. A passing step moves on; the 100 % step promotes (removes
``canaryTrafficPercent``). A failing step or a timeout rolls back (``canaryTrafficPercent: 0``).

Idempotent: every run starts by reading the InferenceService and resumes from its current state (an
interrupted run re-analyses the step it stopped in; a finished one is a no-op; a rolled-back one is
reported, and retried only with ``retry=True``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import Field, field_validator

from housing.deploy.analysis import (
    PROMETHEUS_DURATION,
    AnalysisError,
    RevisionMetrics,
    Thresholds,
    Verdict,
    judge,
)
from housing.deploy.isvc import (
    CanaryError,
    PredictorState,
    parse_state,
    percent_patch,
    promote_patch,
    rollback_patch,
    start_patch,
)
from housing.deploy.kube import InferenceServiceApi
from housing.errors import HousingError
from housing.strict import OneLineErrors, Strict

log = logging.getLogger(__name__)


class MetricsSource(Protocol):
    def revision_metrics(self, namespace: str, revision: str, window: str) -> RevisionMetrics: ...


class CanaryPlan(OneLineErrors, Strict):
    """How ``housing canary`` steps (flags of the same names; durations in seconds)."""

    setting_name: ClassVar[str] = "canary"
    setting_error: ClassVar[type[HousingError]] = CanaryError

    steps: tuple[int, ...] = (10, 50, 100)  # traffic percents; 100 promotes
    ready_timeout: float = Field(600.0, gt=0)  # for the canary to be ready and receive its share
    poll: float = Field(5.0, gt=0)  # between readiness polls
    analysis_window: float = Field(300.0, gt=0)  # of analysis per step
    interval: float = Field(30.0, gt=0)  # between analysis polls
    rate_window: str = "1m"  # PromQL range of rate()/increase()
    failure_limit: int = Field(2, ge=1)  # failing polls that abort a step

    @field_validator("steps", mode="before")
    @classmethod
    def _parse_steps(cls, value: Any) -> Any:
        """The flag's text: comma-separated percents (arrows accepted: 10→50→100)."""
        if not isinstance(value, str):
            return value
        try:
            return tuple(int(part) for part in value.replace("→", ",").split(",") if part.strip())
        except ValueError:
            raise ValueError("expected comma-separated integers like 10,50,100") from None

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps or steps[-1] != 100 or any(not 0 < p <= 100 for p in steps):
            raise ValueError("percents must be in 1..100 and end with 100")
        if list(steps) != sorted(set(steps)) or len(steps) < 2:
            raise ValueError("need at least one step below 100, strictly increasing")
        return steps

    @field_validator("rate_window")
    @classmethod
    def _prometheus_duration(cls, value: str) -> str:
        # Checked here, not first by the analysis query: a bad window must fail before anything is patched.
        if not PROMETHEUS_DURATION.match(value):
            raise ValueError("must be a Prometheus duration like 30s or 2m")
        return value


@dataclass
class StepReport:
    percent: int
    outcome: str  # passed | failed | timeout | promoted
    detail: str
    verdicts: list[Verdict] = field(default_factory=list)


@dataclass
class CanaryResult:
    outcome: str  # promoted | rolled_back | already_rolled_back | noop | dry_run
    target: str
    image: str | None
    canary_revision: str | None = None
    stable_revision: str | None = None
    reason: str = ""
    steps: list[StepReport] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.outcome in ("rolled_back", "already_rolled_back") else 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"exit_code": self.exit_code}

    def summary(self) -> str:
        lines = [
            f"canary {self.target}: {self.outcome.replace('_', ' ').upper()} - {self.reason}",
            f"  image: {self.image}",
            f"  canary revision: {self.canary_revision or 'n/a'}, "
            f"stable revision: {self.stable_revision or 'n/a'}",
        ]
        for step in self.steps:
            lines.append(f"  step {step.percent}%: {step.outcome} - {step.detail}")
            if step.verdicts:
                lines += [f"    {check.describe()}" for check in step.verdicts[-1].checks]
        if self.outcome == "dry_run":
            lines.append("  patches that would be sent (application/merge-patch+json), in order:")
            lines += [f"    {json.dumps(p, sort_keys=True)}" for p in self.patches]
            lines.append(f"  on failure or timeout: {json.dumps(rollback_patch())}")
        return "\n".join(lines)


class _StepTimeoutError(Exception):
    pass


class CanaryController:
    def __init__(
        self,
        api: InferenceServiceApi,
        metrics: MetricsSource,
        *,
        target: str,
        namespace: str,
        plan: CanaryPlan | None = None,
        thresholds: Thresholds | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.metrics = api, metrics
        self.target, self.namespace = target, namespace
        self.plan = plan or CanaryPlan()
        self.thresholds = thresholds or Thresholds()
        self._sleep, self._clock = sleep, clock

    # --- entry points ---------------------------------------------------------------------------------

    def run(self, image: str | None = None, *, dry_run: bool = False, retry: bool = False) -> CanaryResult:
        obj = self.api.get()
        state = parse_state(obj)
        result = CanaryResult(
            "noop", self.target, image or state.image, state.canary_revision, state.stable_revision
        )
        current = state.canary_percent
        if image and image != state.image:
            remaining = list(self.plan.steps)
            first_patch: dict[str, Any] | None = start_patch(obj, image, remaining[0])
            not_canary = state.latest_ready  # the revision serving now cannot be the new canary
            result.canary_revision, result.stable_revision = (
                None,
                state.latest_rolledout or state.latest_ready,
            )
            log.info("starting canary of %s (currently %s)", image, state.image)
        elif current is None:
            result.reason = (
                "image already rolled out"
                if image
                else "no canary in progress (no canaryTrafficPercent); pass --image to start one"
            )
            return result
        elif current == 0 and not retry:
            result.outcome = "already_rolled_back"
            result.reason = (
                f"{state.image} was rolled back (canaryTrafficPercent 0); "
                "push a new image, or pass --retry to analyse it again"
            )
            return result
        else:
            remaining = [p for p in self.plan.steps if p > current]
            first_patch = percent_patch(remaining[0]) if current == 0 else None
            remaining = remaining if current == 0 else [current, *remaining]
            not_canary = None
            log.info("resuming canary of %s at %s%%", state.image, current)

        if dry_run:
            result.outcome, result.reason = "dry_run", "nothing sent"
            patches = [first_patch] if first_patch else []
            patches += [promote_patch() if p == 100 else percent_patch(p) for p in remaining[1:]]
            if remaining[0] == 100:
                patches.append(promote_patch())
            result.patches = patches
            return result
        return self._drive(result, remaining, first_patch, not_canary)

    def abort(self) -> CanaryResult:
        """Roll back now, whatever the state (idempotent)."""
        state = parse_state(self.api.get())
        result = CanaryResult(
            "rolled_back",
            self.target,
            state.image,
            state.canary_revision,
            state.stable_revision,
            reason="aborted on request",
        )
        self._rollback(result, state)
        return result

    # --- the loop -------------------------------------------------------------------------------------

    def _drive(
        self,
        result: CanaryResult,
        remaining: list[int],
        first_patch: dict[str, Any] | None,
        not_canary: str | None,
    ) -> CanaryResult:
        for index, percent in enumerate(remaining):
            patch = first_patch if index == 0 else None
            if percent == 100:
                patch = promote_patch()
            elif index > 0:
                patch = percent_patch(percent)
            if patch is not None:
                log.info("patch %s", json.dumps(patch))
                self.api.patch(patch)
                result.patches.append(patch)
            try:
                state = self._wait_settled(None if percent == 100 else percent, result.image, not_canary)
            except _StepTimeoutError as exc:
                result.steps.append(StepReport(percent, "timeout", str(exc)))
                return self._rollback(result, parse_state(self.api.get()), f"step {percent}%: {exc}")
            result.canary_revision = state.canary_revision
            result.stable_revision = state.stable_revision or result.stable_revision
            if percent == 100:
                result.steps.append(StepReport(100, "promoted", f"{state.canary_revision} serves 100%"))
                result.outcome, result.reason = "promoted", f"{result.image} rolled out to 100%"
                return result
            step = self._analyse(percent, state)
            result.steps.append(step)
            if step.outcome != "passed":
                return self._rollback(result, state, f"step {percent}%: {step.detail}")
        raise AssertionError("unreachable: plans end with 100")  # pragma: no cover

    def _settled(
        self, state: PredictorState, percent: int | None, image: str | None, not_canary: str | None
    ) -> bool:
        canary = state.canary_revision
        if not (state.ready and state.status_current and canary and canary != not_canary):
            return False
        if image is not None and state.image != image:
            return False
        share = state.traffic_percent(canary)
        if percent is None:
            return share in (None, 100)
        return state.stable_revision not in (None, canary) and share in (None, percent)

    def _wait_settled(self, percent: int | None, image: str | None, not_canary: str | None) -> PredictorState:
        deadline = self._clock() + self.plan.ready_timeout
        while True:
            state = parse_state(self.api.get())
            if self._settled(state, percent, image, not_canary):
                return state
            if self._clock() >= deadline:
                raise _StepTimeoutError(
                    f"canary not ready at {percent if percent is not None else 100}% within "
                    f"{self.plan.ready_timeout:.0f}s (Ready={state.ready} {state.ready_message!r}, "
                    f"latest created {state.latest_created}, latest ready {state.latest_ready}, "
                    f"traffic {[(t.get('revisionName'), t.get('percent')) for t in state.traffic]})"
                )
            self._sleep(self.plan.poll)

    def _analyse(self, percent: int, state: PredictorState) -> StepReport:
        canary, stable = state.canary_revision, state.stable_revision
        assert canary is not None  # guaranteed by _settled
        deadline = self._clock() + self.plan.analysis_window
        verdicts: list[Verdict] = []
        failures = judged = 0
        while True:
            try:
                canary_metrics = self.metrics.revision_metrics(self.namespace, canary, self.plan.rate_window)
                stable_metrics = (
                    self.metrics.revision_metrics(self.namespace, stable, self.plan.rate_window)
                    if stable
                    else None
                )
                verdict = judge(canary_metrics, stable_metrics, self.thresholds)
            except AnalysisError as exc:
                verdict = Verdict(None, f"no metrics: {exc}")
            verdicts.append(verdict)
            log.info(
                "step %s%% analysis: %s; %s",
                percent,
                verdict.reason,
                "; ".join(c.describe() for c in verdict.checks),
            )
            if verdict.passed is False:
                failures += 1
                if failures >= self.plan.failure_limit:
                    return StepReport(percent, "failed", verdict.reason, verdicts)
            elif verdict.passed:
                judged += 1
            if self._clock() + self.plan.interval > deadline:
                break
            self._sleep(self.plan.interval)
        if judged == 0:
            last = verdicts[-1].reason
            return StepReport(
                percent, "failed", f"could not judge the canary in the window ({last})", verdicts
            )
        return StepReport(percent, "passed", f"{judged} passing checks, {failures} failing", verdicts)

    def _rollback(
        self, result: CanaryResult, state: PredictorState, reason: str | None = None
    ) -> CanaryResult:
        if state.canary_percent != 0:
            log.warning("rolling back: patch %s", json.dumps(rollback_patch()))
            self.api.patch(rollback_patch())
            result.patches.append(rollback_patch())
        result.outcome = "rolled_back"
        if reason:
            result.reason = reason
        return result
