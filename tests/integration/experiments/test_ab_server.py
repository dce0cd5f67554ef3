"""A real `housing serve` process with two models (split and shadow), driven by the traffic simulator, read
back by the A/B analysis: routing, headers, log records, per-variant gauges and feedback agree."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest

from housing.config import AbTestParams
from housing.experiments.abtest import analyze_log, make_plan
from housing.experiments.traffic import TrafficConfig, load_houses, run_traffic
from housing.inference_log import read_records
from housing.server_process import start_server
from housing.serving.router import assign_variant
from housing.variants import Variant

pytestmark = pytest.mark.integration

SALT = "it-exp-1"
PARAMS = AbTestParams(mde=0.2, mde_kind="absolute", planning_sd=0.3, min_n=20, bootstrap_resamples=200)


def serve(model_dir, challenger_dir, workdir, *ab_args):
    args = ["--model-dir", str(model_dir), "--challenger-model-dir", str(challenger_dir), *ab_args]
    return start_server(workdir / "server.log", *args, log_dir=workdir / "log")


def traffic(server, houses):
    config = TrafficConfig(
        url=server.url,
        rate=400,
        requests=len(houses),
        concurrency=8,
        feedback_delay=0.2,
        feedback_token_file=server.feedback_token_file,
    )
    return asyncio.run(run_traffic(config, houses))


def by_features(houses):
    return {tuple(h.features): h for h in houses}


def log_mae(records, variant, actuals):
    errors = [abs(r["prediction"] - actuals[r["request_id"]]) for r in records if r["variant"] == variant]
    return float(np.mean(errors)), len(errors)


def test_split_mode_routes_each_house_by_its_key(model_dir, challenger_dir, houses_csv, params, tmp_path):
    houses = load_houses(houses_csv, params.data, houses=600, seed=3)
    server = serve(model_dir, challenger_dir, tmp_path, "--ab-mode", "split", "--ab-salt", SALT)
    try:
        summary = traffic(server, houses)
        gauges = server.gauges()
    finally:
        assert server.stop() in (0, -15, 143)
    assert summary.ok == 600
    assert summary.feedback.accepted == 600
    expected = Counter(assign_variant(h.house_id, SALT, 0.5) for h in houses)
    assert summary.variants == dict(expected)  # the headers said what the hash says
    assert len(summary.model_versions) == 2

    records = read_records(tmp_path / "log", kind="prediction")
    actuals = {r["request_id"]: r["actual"] for r in read_records(tmp_path / "log", kind="feedback")}
    assert len(records) == len(actuals) == 600
    lookup = by_features(houses)
    versions = {}
    for record in records:
        house = lookup[tuple(record["features"][f] for f in params.data.features)]
        assert record["variant"] == assign_variant(house.house_id, SALT, 0.5)
        assert actuals[record["request_id"]] == pytest.approx(house.actual)
        versions.setdefault(record["variant"], set()).add(record["model_version"])
    assert all(len(v) == 1 for v in versions.values())
    assert versions["champion"] != versions["challenger"]

    # The server's rolling gauges are the per-variant MAE of exactly these fed-back predictions.
    for variant in Variant:
        mae, n = log_mae(records, variant, actuals)
        assert gauges[variant].feedback == n
        assert gauges[variant].mae == pytest.approx(mae, rel=1e-4)

    result = analyze_log(tmp_path / "log", PARAMS.model_copy(update={"expected_challenger_share": 0.5}))
    assert result.design == "unpaired"
    assert result.progress.n_champion + result.progress.n_challenger == 600
    assert result.sample_ratio.p_value > 0.001
    assert not any("sample ratio" in w for w in result.warnings)
    assert result.variants.challenger.model_versions == sorted(versions["challenger"])


def test_shadow_mode_answers_with_the_champion_and_pairs_the_challenger(
    model_dir, challenger_dir, houses_csv, params, tmp_path
):
    houses = load_houses(houses_csv, params.data, houses=200, seed=4)
    server = serve(model_dir, challenger_dir, tmp_path, "--ab-mode", "shadow")
    try:
        summary = traffic(server, houses)
        gauges = server.gauges()
    finally:
        server.stop()
    assert summary.variants == {"champion": 200}
    assert len(summary.model_versions) == 1
    records = read_records(tmp_path / "log", kind="prediction")
    served = {r["request_id"]: r for r in records if not r.get("shadow")}
    shadow = {r["request_id"]: r for r in records if r.get("shadow")}
    assert set(served) == set(shadow)
    assert len(served) == 200
    assert {r["variant"] for r in shadow.values()} == {"challenger"}
    actuals = {r["request_id"]: r["actual"] for r in read_records(tmp_path / "log", kind="feedback")}
    for variant in Variant:
        mae, n = log_mae(records, variant, actuals)
        assert n == 200
        assert gauges[variant].mae == pytest.approx(mae, rel=1e-4)  # one feedback scores both variants

    result = analyze_log(tmp_path / "log", PARAMS, make_plan(PARAMS))
    assert result.design == "paired"
    assert result.progress.n_pairs == 200
    assert result.variants.challenger.shadow_requests == 200
