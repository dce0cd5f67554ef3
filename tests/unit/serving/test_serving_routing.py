"""A/B routing in the model server: deterministic split by X-Routing-Key, shadow mode, per-variant metrics,
feedback and inference-log records (the ASGI app in-process, two real exported models)."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from asgi_client import call, feedback, feedback_settings
from asgi_client import metric_samples as metrics
from typer.testing import CliRunner

from housing.errors import ConfigError, DataError
from housing.inference_log import read_records
from housing.serving.router import Router, assign_variant, bucket
from housing.serving.server import build_app
from housing.serving.settings import ServeSettings

ROW = [8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23]
ROW2 = [3.0, 20, 5.0, 1.0, 1000, 3.0, 34.0, -118.0]


@pytest.fixture
def make_app(model_dir, challenger_dir, tmp_path):
    def make(**overrides):
        options = {
            "challenger_model_dir": challenger_dir,
            "inference_log_dir": tmp_path / "log",
            **feedback_settings(tmp_path / "secrets"),
            **overrides,
        }
        return build_app(ServeSettings(model_dir=model_dir, **options))

    return make


def predict(app, row, key=None, request_id=None) -> httpx.Response:
    headers = {}
    if key is not None:
        headers["X-Routing-Key"] = key
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    response = call(
        app, "POST", f"/v1/models/{app.router.name}:predict", json={"instances": [row]}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response


def value(samples, family, sample=None, **labels) -> float:
    for name, sample_labels, v in samples[family]:
        if (sample is None or name == sample) and all(sample_labels.get(k) == w for k, w in labels.items()):
            return v
    raise KeyError((family, labels))


def keys_for(router: Router, variant: str, count: int) -> list[str]:
    """Routing keys that the router's salt and share send to ``variant``."""
    keys = (f"house-{i}" for i in range(100_000))
    chosen = [k for k in keys if assign_variant(k, router.salt, router.challenger_share) == variant]
    return chosen[:count]


@dataclass(eq=False)  # hashed by identity, like the real handles
class StubHandle:
    version: str
    name: str = "m"
    ready: bool = True


def handle(version: str) -> StubHandle:
    return StubHandle(version)


# --- the router alone --------------------------------------------------------------------------------------


def test_assignment_is_deterministic_salted_and_matches_the_share():
    keys = [f"house-{i}" for i in range(20_000)]
    first = [assign_variant(k, "exp-1", 0.1) for k in keys]
    assert first == [assign_variant(k, "exp-1", 0.1) for k in keys]
    share = first.count("challenger") / len(keys)
    assert share == pytest.approx(0.1, abs=0.01)
    # A new salt reshuffles the arms: about 10% of each arm's keys, independent of the old assignment.
    second = [assign_variant(k, "exp-2", 0.1) for k in keys]
    both = sum(a == b == "challenger" for a, b in zip(first, second, strict=True)) / len(keys)
    assert both == pytest.approx(0.01, abs=0.005)
    assert 0.0 <= bucket("x", "s") < 1.0
    assert all(assign_variant(k, "s", 0.0) == "champion" for k in keys[:100])


def test_assignment_is_deterministic_and_respects_the_share():
    champion, challenger = handle("sha-a"), handle("sha-b")
    keys = [f"key-{i}" for i in range(10_000)]
    for share in (0.5, 0.1):
        router = Router(champion, challenger, mode="split", challenger_share=share, salt="exp-1")
        first = [router.pick(k) for k in keys]
        assert first == [router.pick(k) for k in keys]  # the same key, the same variant, every time
        # ... and the one the simulator and the analysis compute with the shared function.
        expected = [assign_variant(k, "exp-1", share) for k in keys]
        assert [("challenger" if h is challenger else "champion") for h in first] == expected
        assert sum(h is challenger for h in first) / len(keys) == pytest.approx(share, abs=0.03)


def test_requests_without_a_key_are_random_at_the_share():
    champion, challenger = handle("sha-a"), handle("sha-b")
    router = Router(champion, challenger, mode="split", challenger_share=0.3)
    picks = [router.pick(None) for _ in range(10_000)]
    assert sum(h is challenger for h in picks) / len(picks) == pytest.approx(0.3, abs=0.03)
    assert {router.pick("") for _ in range(200)} == {champion, challenger}  # an empty key is no key


def test_default_salt_names_both_versions_and_off_ignores_the_challenger():
    champion, challenger = handle("sha-a"), handle("sha-b")
    assert Router(champion, challenger, mode="split").salt == "sha-a/sha-b"
    off = Router(champion, challenger, mode="off")
    assert off.handles == [champion]
    assert off.challenger is None
    assert off.shadow is None
    assert {off.pick(f"k{i}") for i in range(100)} == {champion}
    shadow = Router(champion, challenger, mode="shadow")
    assert shadow.shadow is challenger
    assert {shadow.pick(f"k{i}") for i in range(100)} == {champion}  # shadow: the champion answers
    with pytest.raises(ValueError, match="needs a challenger"):
        Router(champion, None, mode="split")
    with pytest.raises(ValueError, match="off, split or shadow"):
        Router(champion, challenger, mode="canary")


# --- settings and start-up ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"ab_mode": "split"}, "needs a challenger model directory"),
        ({"ab_mode": "mirror", "challenger_model_dir": "x"}, "must be one of off, split, shadow"),
        ({"challenger_share": 1.5}, "challenger_share=1.5 is out of range"),
        ({"ab_salt": ""}, "ab_salt"),
    ],
)
def test_bad_ab_settings_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        ServeSettings(**overrides)


def test_a_challenger_with_another_input_schema_is_refused(make_app, challenger_dir, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(challenger_dir, changed)
    metadata = json.loads((changed / "metadata.json").read_text())
    metadata["features"][0]["max"] = 99.0
    (changed / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(DataError, match=r"valid range of MedInc \[.*99.0\] differs from the champion's"):
        make_app(ab_mode="split", challenger_model_dir=changed)


def test_cli_flags_and_env_reach_the_settings(monkeypatch, model_dir, challenger_dir):
    import housing.serving.server as server
    from housing.cli import app

    seen = []
    monkeypatch.setattr(server, "run", seen.append)
    monkeypatch.setenv("HOUSING_CHALLENGER_MODEL_DIR", str(challenger_dir))
    args = ["serve", "--model-dir", str(model_dir), "--ab-mode", "split", "--challenger-share", "0.1"]
    result = CliRunner().invoke(app, [*args, "--ab-salt", "exp-7"])
    assert result.exit_code == 0, result.output
    (settings,) = seen
    assert (settings.ab_mode, settings.challenger_share, settings.ab_salt) == ("split", 0.1, "exp-7")
    assert settings.challenger_model_dir == challenger_dir
    bad = CliRunner().invoke(app, [*args[:4], "--challenger-share", "2"])
    assert bad.exit_code != 0


# --- split mode through the app ----------------------------------------------------------------------------


def test_split_routes_by_key_and_labels_everything_by_variant(make_app, tmp_path):
    app = make_app(ab_mode="split", challenger_share=0.5, ab_salt="exp-1")
    router = app.router
    champion, challenger = router.champion, router.challenger
    assert champion.version != challenger.version
    seen = {}
    for variant, count in (("champion", 3), ("challenger", 2)):
        for key in keys_for(router, variant, count):
            response = predict(app, ROW, key=key, request_id=f"{variant}-{key}")
            assert response.headers["x-model-variant"] == variant
            expected = champion if variant == "champion" else challenger
            assert response.headers["x-model-version"] == expected.version
            assert response.json()["predictions"] == pytest.approx(expected.predict(np.array([ROW])).tolist())
            assert predict(app, ROW, key=key).headers["x-model-variant"] == variant  # sticky per key
            seen[variant] = response.json()["predictions"][0]
    assert seen["champion"] != pytest.approx(seen["challenger"])

    # V2 routes the same way and names the version that answered in the body.
    key = keys_for(router, "challenger", 1)[0]
    body = {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": ROW}]}
    v2 = call(app, "POST", f"/v2/models/{router.name}/infer", json=body, headers={"X-Routing-Key": key})
    assert v2.json()["model_version"] == challenger.version == v2.headers["x-model-version"]
    assert v2.headers["x-model-variant"] == "challenger"
    # An explicit version bypasses routing.
    pinned = call(
        app,
        "POST",
        f"/v2/models/{router.name}/versions/{champion.version}/infer",
        json=body,
        headers={"X-Routing-Key": key},
    )
    assert pinned.headers["x-model-variant"] == "champion"

    samples = metrics(app)
    assert value(samples, "model_prediction", "model_prediction_total", variant="champion") == 7
    assert value(samples, "model_prediction", "model_prediction_total", variant="challenger") == 5
    assert value(samples, "model_version_info", variant="challenger", version=challenger.version) == 1
    assert value(samples, "model_version_info", variant="champion", version=champion.version) == 1
    variants = {labels.get("variant") for _, labels, _ in samples["model_prediction_latency_seconds"]}
    assert variants == {"champion", "challenger"}  # bounded: two label values, whatever the keys
    openapi = call(app, "GET", "/openapi.json").json()
    assert {champion.version, challenger.version} <= set(json.dumps(openapi).split('"'))  # both versions

    app.inference_log.close()
    records = read_records(tmp_path / "log", kind="prediction")
    assert len(records) == 12  # 5 keyed requests, each twice, + 2 V2
    by_id = {r["request_id"]: r for r in records}
    for variant in ("champion", "challenger"):
        logged = [r for rid, r in by_id.items() if rid.startswith(f"{variant}-")]
        assert logged
        assert all(r["variant"] == variant for r in logged)
        assert all("shadow" not in r for r in logged)
    assert {r["model_version"] for r in records if r["variant"] == "challenger"} == {challenger.version}


def test_feedback_updates_the_variant_that_answered(make_app):
    app = make_app(ab_mode="split", challenger_share=0.5)
    pairs = {"champion": [], "challenger": []}
    for variant in pairs:
        for i, key in enumerate(keys_for(app.router, variant, 4)):
            response = predict(app, ROW if i % 2 else ROW2, key=key)
            prediction = response.json()["predictions"][0]
            actual = prediction + (0.1 if variant == "champion" else 0.5) * (i + 1)
            # By token: scored from what the token says the variant predicted.
            accepted = feedback(
                app, {"feedback_token": response.headers["x-feedback-token"], "actual": actual}
            )
            assert accepted.status_code == 202
            pairs[variant].append((prediction, actual))
    samples = metrics(app)
    for variant, observed in pairs.items():
        mae = np.mean([abs(p - a) for p, a in observed])
        assert value(samples, "model_mae_score", variant=variant) == pytest.approx(mae, rel=1e-5)
        assert value(samples, "model_feedback", "model_feedback_total", variant=variant) == 4
        assert not math.isnan(value(samples, "model_r2_score", variant=variant))
    app.inference_log.close()


# --- shadow mode -------------------------------------------------------------------------------------------


def test_shadow_returns_the_champion_and_logs_the_challenger(make_app, tmp_path):
    app = make_app(ab_mode="shadow")
    champion, challenger = app.router.champion, app.router.challenger
    ids = []
    for i, row in enumerate((ROW, ROW2, ROW)):
        response = predict(app, row, key=f"house-{i}", request_id=f"r{i}")
        assert response.headers["x-model-variant"] == "champion"
        assert response.headers["x-model-version"] == champion.version
        assert response.json()["predictions"] == pytest.approx(champion.predict(np.array([row])).tolist())
        ids.append(response.headers["x-request-id"])
    actuals = [4.0, 2.0, 3.5]
    for request_id, actual in zip(ids, actuals, strict=True):
        assert feedback(app, {"request_id": request_id, "actual": actual}).status_code == 202

    samples = metrics(app)
    for handle_, variant in ((champion, "champion"), (challenger, "challenger")):
        predicted = [handle_.predict(np.array([r]))[0] for r in (ROW, ROW2, ROW)]
        mae = np.mean(np.abs(np.array(predicted) - actuals))
        assert value(samples, "model_mae_score", variant=variant) == pytest.approx(mae, rel=1e-5)
        assert value(samples, "model_prediction", "model_prediction_total", variant=variant) == 3

    app.inference_log.close()
    records = read_records(tmp_path / "log", kind="prediction")
    served = [r for r in records if not r.get("shadow")]
    shadow = [r for r in records if r.get("shadow")]
    assert {r["variant"] for r in served} == {"champion"}
    assert {r["variant"] for r in shadow} == {"challenger"}
    assert (
        [r["request_id"] for r in shadow] == [r["request_id"] for r in served] == ids
    )  # same houses: paired
    assert all(r["model_version"] == challenger.version and r["latency_s"] > 0 for r in shadow)
    assert {r["shadow"] for r in shadow} == {True}


def test_shadow_failure_never_reaches_the_client(make_app, tmp_path, monkeypatch):
    app = make_app(ab_mode="shadow")
    challenger = app.router.challenger

    def broken(_features):
        raise RuntimeError("boom")

    monkeypatch.setattr(challenger, "predict", broken)
    response = predict(app, ROW, request_id="r1")
    assert response.headers["x-model-variant"] == "champion"
    # Feedback still scores the champion; the challenger has nothing to score.
    assert feedback(app, {"request_id": "r1", "actual": 3.0}).status_code == 202
    samples = metrics(app)
    assert value(samples, "model_prediction_errors", variant="challenger", reason="model_error") == 1
    assert value(samples, "model_prediction_errors", variant="champion", reason="model_error") == 0
    assert value(samples, "model_feedback", "model_feedback_total", variant="challenger") == 0
    app.inference_log.close()
    errors = read_records(tmp_path / "log", kind="error")
    assert [(e["variant"], e["reason"]) for e in errors] == [("challenger", "model_error")]


def test_off_mode_serves_the_champion_only(make_app):
    app = make_app(ab_mode="off")  # a challenger directory is configured, but not loaded
    assert app.router.handles == [app.router.champion]
    for i in range(20):
        assert predict(app, ROW, key=f"house-{i}").headers["x-model-variant"] == "champion"
    samples = metrics(app)
    assert {labels["variant"] for _, labels, _ in samples["model_version_info"]} == {"champion"}
    assert app.shadow_feedback is None
    app.inference_log.close()
