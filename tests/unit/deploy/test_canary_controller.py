"""The canary controller's decisions against an in-memory KServe stand-in and scripted metrics."""

from __future__ import annotations

import json

import pytest
from kserve_standin import KServeStandin

from housing.deploy.analysis import AnalysisError, RevisionMetrics, Thresholds
from housing.deploy.canary import CanaryController, CanaryPlan
from housing.deploy.isvc import CanaryError

STABLE_IMAGE, NEW_IMAGE = "registry.local/housing:v1", "registry.local/housing:v2"
HEALTHY = RevisionMetrics(requests=500, error_rate=0.001, p95_latency_s=0.004, mae=None)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedMetrics:
    """Metrics per revision; a list is consumed one poll at a time (last item repeats)."""

    def __init__(self, by_revision: dict[str, object], default: RevisionMetrics = HEALTHY) -> None:
        self.by_revision, self.default = by_revision, default
        self.calls: list[tuple[str, str]] = []

    def revision_metrics(self, namespace: str, revision: str, window: str) -> RevisionMetrics:
        self.calls.append((namespace, revision))
        value = self.by_revision.get(revision, self.default)
        if isinstance(value, list):
            value = value.pop(0) if len(value) > 1 else value[0]
        if isinstance(value, Exception):
            raise value
        return value


PLAN = CanaryPlan(
    steps=(10, 50, 100),
    ready_timeout=30,
    poll=1,
    analysis_window=60,
    interval=10,
    rate_window="1m",
    failure_limit=2,
)


def controller(standin: KServeStandin, metrics: ScriptedMetrics, **kwargs) -> CanaryController:
    clock = FakeClock()
    options = {"plan": PLAN, "thresholds": Thresholds()} | kwargs
    return CanaryController(
        standin,
        metrics,
        target="housing-test/housing",
        namespace="housing-test",
        sleep=clock.sleep,
        clock=clock,
        **options,
    )


def percents(patches: list[dict]) -> list:
    return [p["spec"]["predictor"].get("canaryTrafficPercent", "keep") for p in patches]


def test_good_canary_goes_10_50_then_is_promoted():
    standin = KServeStandin()
    result = controller(standin, ScriptedMetrics({})).run(NEW_IMAGE)
    assert result.outcome == "promoted"
    assert result.exit_code == 0
    assert percents(standin.patches) == [10, 50, None]
    assert standin.patches[0]["spec"]["predictor"]["containers"][0]["image"] == NEW_IMAGE
    assert "canaryTrafficPercent" not in standin.predictor  # removed = promoted
    assert standin.stable_revision() == "housing-predictor-00002"
    assert (result.canary_revision, result.stable_revision) == (
        "housing-predictor-00002",
        "housing-predictor-00001",
    )
    assert [s.outcome for s in result.steps] == ["passed", "passed", "promoted"]


def test_start_patch_keeps_the_rest_of_the_container_and_compares_right_revisions():
    standin = KServeStandin()
    metrics = ScriptedMetrics({})
    controller(standin, metrics).run(NEW_IMAGE)
    container = standin.patches[0]["spec"]["predictor"]["containers"][0]
    assert container == {"name": "kserve-container", "image": NEW_IMAGE, "ports": [{"containerPort": 8080}]}
    assert {rev for _, rev in metrics.calls} == {"housing-predictor-00001", "housing-predictor-00002"}


@pytest.mark.parametrize(
    ("bad", "failed_check"),
    [
        (RevisionMetrics(500, 0.20, 0.004, None), "error rate"),
        (RevisionMetrics(500, 0.0, 0.350, None), "p95 latency"),
        (RevisionMetrics(500, 0.0, 0.004, 0.55), "MAE"),
    ],
)
def test_bad_canary_is_rolled_back_at_the_first_step(bad, failed_check):
    standin = KServeStandin()
    stable = RevisionMetrics(5000, 0.0, 0.004, 0.35)
    result = controller(
        standin, ScriptedMetrics({"housing-predictor-00002": bad, "housing-predictor-00001": stable})
    ).run(NEW_IMAGE)
    assert result.outcome == "rolled_back"
    assert result.exit_code == 1
    assert percents(standin.patches) == [10, 0]
    assert standin.predictor["canaryTrafficPercent"] == 0
    assert failed_check in result.reason
    summary = result.summary()
    assert "ROLLED BACK" in summary
    assert "FAIL" in summary
    assert failed_check in summary


def test_a_canary_no_worse_than_a_struggling_stable_passes_but_a_worse_one_fails():
    stable = RevisionMetrics(5000, 0.03, 0.004, None)
    standin = KServeStandin()
    same = RevisionMetrics(500, 0.03, 0.004, None)
    ok = controller(
        standin, ScriptedMetrics({"housing-predictor-00002": same, "housing-predictor-00001": stable})
    ).run(NEW_IMAGE)
    assert ok.outcome == "promoted"
    standin = KServeStandin()
    worse = RevisionMetrics(500, 0.05, 0.004, None)
    bad = controller(
        standin, ScriptedMetrics({"housing-predictor-00002": worse, "housing-predictor-00001": stable})
    ).run(NEW_IMAGE)
    assert bad.outcome == "rolled_back"


def test_one_failing_poll_below_the_failure_limit_does_not_roll_back():
    blip = RevisionMetrics(500, 0.5, 0.004, None)
    standin = KServeStandin()
    result = controller(standin, ScriptedMetrics({"housing-predictor-00002": [blip, HEALTHY]})).run(NEW_IMAGE)
    assert result.outcome == "promoted"
    assert "1 failing" in result.steps[0].detail


def test_no_canary_traffic_or_no_prometheus_means_rollback_not_promotion():
    quiet = RevisionMetrics(3, None, None, None)
    standin = KServeStandin()
    result = controller(standin, ScriptedMetrics({"housing-predictor-00002": quiet})).run(NEW_IMAGE)
    assert result.outcome == "rolled_back"
    assert "could not judge" in result.reason
    standin = KServeStandin()
    down = AnalysisError("Prometheus http://127.0.0.1:1 unreachable")
    result = controller(standin, ScriptedMetrics({}, default=down)).run(NEW_IMAGE)
    assert result.outcome == "rolled_back"
    assert "unreachable" in result.reason


def test_a_canary_that_never_gets_ready_times_out_and_rolls_back():
    standin = KServeStandin(unready_images={NEW_IMAGE})
    result = controller(standin, ScriptedMetrics({})).run(NEW_IMAGE)
    assert result.outcome == "rolled_back"
    assert result.steps[0].outcome == "timeout"
    assert "not ready at 10% within 30s" in result.reason
    assert "image pull back-off" in result.reason
    assert percents(standin.patches) == [10, 0]


def test_rerun_after_interruption_resumes_at_the_current_step():
    standin = KServeStandin()
    standin.set_canary_state(NEW_IMAGE, 50)
    result = controller(standin, ScriptedMetrics({})).run(NEW_IMAGE)
    assert result.outcome == "promoted"
    assert percents(standin.patches) == [None]  # 50% re-analysed in place, then promoted
    assert [s.percent for s in result.steps] == [50, 100]


def test_resume_from_a_percent_between_steps_analyses_it_first():
    standin = KServeStandin()
    standin.set_canary_state(NEW_IMAGE, 30)
    result = controller(standin, ScriptedMetrics({})).run()  # no --image: continue what the spec holds
    assert [s.percent for s in result.steps] == [30, 50, 100]
    assert percents(standin.patches) == [50, None]


def test_rerun_after_promotion_is_a_noop():
    standin = KServeStandin()
    ctl = controller(standin, ScriptedMetrics({}))
    assert ctl.run(NEW_IMAGE).outcome == "promoted"
    sent = len(standin.patches)
    again = ctl.run(NEW_IMAGE)
    assert again.outcome == "noop"
    assert again.exit_code == 0
    assert "already rolled out" in again.reason
    assert len(standin.patches) == sent
    assert controller(standin, ScriptedMetrics({})).run().outcome == "noop"


def test_rerun_after_rollback_reports_it_and_retry_starts_over():
    bad = RevisionMetrics(500, 0.5, 0.004, None)
    standin = KServeStandin()
    assert (
        controller(standin, ScriptedMetrics({"housing-predictor-00002": bad})).run(NEW_IMAGE).exit_code == 1
    )
    sent = len(standin.patches)
    again = controller(standin, ScriptedMetrics({"housing-predictor-00002": bad})).run(NEW_IMAGE)
    assert again.outcome == "already_rolled_back"
    assert again.exit_code == 1
    assert "--retry" in again.reason
    assert len(standin.patches) == sent
    retried = controller(standin, ScriptedMetrics({})).run(NEW_IMAGE, retry=True)
    assert retried.outcome == "promoted"
    assert percents(standin.patches[sent:]) == [10, 50, None]


def test_dry_run_sends_nothing_and_lists_the_patches():
    standin = KServeStandin()
    result = controller(standin, ScriptedMetrics({})).run(NEW_IMAGE, dry_run=True)
    assert result.outcome == "dry_run"
    assert result.exit_code == 0
    assert standin.patches == []
    assert percents(result.patches) == [10, 50, None]
    summary = result.summary()
    assert json.dumps(result.patches[0], sort_keys=True) in summary
    assert '{"spec": {"predictor": {"canaryTrafficPercent": 0}}}' in summary  # the rollback it would use


def test_abort_rolls_back_once_and_is_idempotent():
    standin = KServeStandin()
    standin.set_canary_state(NEW_IMAGE, 50)
    ctl = controller(standin, ScriptedMetrics({}))
    assert ctl.abort().outcome == "rolled_back"
    assert ctl.abort().exit_code == 1
    assert percents(standin.patches) == [0]


def test_a_new_image_during_a_canary_starts_a_fresh_canary():
    standin = KServeStandin()
    standin.set_canary_state(NEW_IMAGE, 50)
    result = controller(standin, ScriptedMetrics({})).run("registry.local/housing:v3")
    assert result.outcome == "promoted"
    assert result.canary_revision == "housing-predictor-00003"
    assert percents(standin.patches) == [10, 50, None]


@pytest.mark.parametrize("steps", [(10, 5, 100), (10, 50), (100,), (0, 50, 100), (10, 10, 100), (50, 150)])
def test_invalid_steps_are_refused(steps):
    with pytest.raises(CanaryError, match="--steps"):
        CanaryPlan(steps=steps)


def test_invalid_plan_values_are_refused():
    with pytest.raises(CanaryError, match="--interval"):
        CanaryPlan(interval=0)
    with pytest.raises(CanaryError, match="failure-limit"):
        CanaryPlan(failure_limit=0)
