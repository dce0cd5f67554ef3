"""`housing abtest promote`: refuses anything but challenger_wins; moves @champion to the tested version."""

from __future__ import annotations

import json
import subprocess

import pytest
from abtest_synthetic import ab_records
from typer.testing import CliRunner

from housing.config import AbTestParams, RegisterParams
from housing.errors import RegistryError
from housing.experiments.abtest import AbTestError, analyze
from housing.experiments.promotion import promote_verdict, rollout_instructions
from housing.experiments.verdict import Arms, Verdict, read_verdict, write_json

NAME = "housing-abtest"


def _verdict_file(tmp_path, verdict: str = "challenger_wins", versions=("sha-two",)):
    """A verdict file as `abtest analyze` writes it, saying ``verdict`` about the challenger ``versions``."""
    analysed = analyze(ab_records(300, seed=5), AbTestParams())
    variants = Arms(
        champion=analysed.variants.champion.model_copy(update={"model_versions": ["sha-one"]}),
        challenger=analysed.variants.challenger.model_copy(update={"model_versions": list(versions)}),
    )
    path = tmp_path / "abtest.json"
    write_json(
        path,
        analysed.model_copy(update={"verdict": Verdict(verdict), "reason": "because", "variants": variants}),
    )
    return path


@pytest.fixture
def overlay(tmp_path):
    directory = tmp_path / "overlay"
    directory.mkdir()
    (directory / "kustomization.yaml").write_text(
        "namespace: housing-lab\n"
        "images:\n  - name: housing-model\n    newName: registry.local/housing\n    newTag: old\n"
    )
    return directory


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A real MLflow sqlite registry: version 1 (sha-one) @champion, version 2 (sha-two) @challenger."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    client.create_registered_model(NAME)
    for model_version in ("sha-one", "sha-two"):
        version = client.create_model_version(NAME, source=f"{tmp_path}/{model_version}")
        client.set_model_version_tag(NAME, version.version, "model_version", model_version)
        # Different holdouts: the offline rule would refuse; an A/B verdict does not need it.
        client.set_model_version_tag(NAME, version.version, "holdout_sha256", model_version)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_alias(NAME, "challenger", "2")
    return client


@pytest.mark.parametrize("verdict", ["champion_wins", "no_difference", "collecting"])
def test_refuses_any_other_verdict(tmp_path, overlay, verdict):
    with pytest.raises(AbTestError, match=f"verdict is '{verdict}'.*only a 'challenger_wins' verdict"):
        promote_verdict(_verdict_file(tmp_path, verdict), RegisterParams(), overlay=overlay, dry_run=True)


def test_refuses_bad_files(tmp_path, overlay):
    with pytest.raises(AbTestError, match="file not found \\(run `housing abtest analyze` first\\)"):
        promote_verdict(tmp_path / "none.json", RegisterParams(), overlay=overlay)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(AbTestError, match="not valid JSON"):
        promote_verdict(broken, RegisterParams(), overlay=overlay)
    with pytest.raises(AbTestError, match="exactly one version"):
        promote_verdict(
            _verdict_file(tmp_path, versions=("a", "b")), RegisterParams(), overlay=overlay, dry_run=True
        )


def test_a_verdict_file_reads_back_into_the_model_and_a_partial_one_is_refused(tmp_path):
    path = _verdict_file(tmp_path, "no_difference")
    verdict = read_verdict(path)
    assert verdict.verdict is Verdict.NO_DIFFERENCE
    assert verdict.variants.challenger.model_versions == ["sha-two"]
    assert json.loads(path.read_text())["variants"]["challenger"]["model_versions"] == ["sha-two"]
    document = json.loads(path.read_text())
    del document["progress"]
    path.write_text(json.dumps(document))
    with pytest.raises(AbTestError, match=r"field 'progress': Field required .*`housing abtest analyze`"):
        read_verdict(path)
    document["progress"] = {}
    document["verdict"] = "maybe"
    path.write_text(json.dumps(document))
    with pytest.raises(AbTestError, match="field 'verdict': Input should be 'challenger_wins'"):
        read_verdict(path)


def test_rollout_instructions_name_the_overlay_image_and_namespace(overlay):
    text = rollout_instructions(overlay, "registry.local/housing:abc123", "sha-two")
    assert "kustomize edit set image housing-model=registry.local/housing:abc123" in text
    assert "housing canary --image registry.local/housing:abc123 -n housing-lab" in text
    patch = text.splitlines()[-1].split("-p ", 1)[1].strip("'")
    assert json.loads(patch) == [
        {
            "op": "replace",
            "path": "/spec/predictor/containers/0/image",
            "value": "registry.local/housing:abc123",
        }
    ]


def test_without_an_image_the_commands_use_cds_git_sha_tag_and_run_in_a_shell(overlay):
    """CD tags images with the git sha, not the model version: the printed commands take $IMAGE."""
    text = rollout_instructions(overlay, None, "sha-two")
    assert 'IMAGE="registry.local/housing:${GIT_SHA:?' in text
    assert "registry.local/housing:sha-two" not in text
    assert 'housing canary --image "$IMAGE" -n housing-lab' in text
    script = "\n".join(line for line in text.splitlines() if line.startswith(("IMAGE=", "#")))
    missing = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert missing.returncode != 0
    assert "dvc.lock pins sha-two" in missing.stderr
    ok = subprocess.run(
        ["bash", "-c", script + '\necho "$IMAGE"'], capture_output=True, text=True, env={"GIT_SHA": "abc123"}
    )
    assert ok.stdout.strip() == "registry.local/housing:abc123"
    patch_line = text.splitlines()[-1]
    expanded = subprocess.run(
        ["bash", "-c", f'IMAGE=r/h:1; set -- {patch_line.split("-p ", 1)[1]}; printf %s "$1"'],
        capture_output=True,
        text=True,
    )
    assert json.loads(expanded.stdout)[0]["value"] == "r/h:1"


def test_challenger_wins_moves_champion_to_the_tested_version(tmp_path, overlay, registry):
    # A newer version registered after the test must not be promoted by mistake.
    newer = registry.create_model_version(NAME, source=f"{tmp_path}/sha-three")
    registry.set_model_version_tag(NAME, newer.version, "model_version", "sha-three")
    registry.set_registered_model_alias(NAME, "challenger", newer.version)
    result = promote_verdict(_verdict_file(tmp_path), RegisterParams(model_name=NAME), overlay=overlay)
    assert result.registry["promoted"] is True
    assert str(registry.get_model_version_by_alias(NAME, "champion").version) == "2"
    assert result.registry["previous"] == "1"
    assert "dvc.lock pins sha-two" in result.rollout


def test_unknown_model_version_is_refused(tmp_path, overlay, registry):
    with pytest.raises(
        RegistryError, match="no version of model 'housing-abtest' is tagged model_version='sha-x'"
    ):
        promote_verdict(
            _verdict_file(tmp_path, versions=("sha-x",)), RegisterParams(model_name=NAME), overlay=overlay
        )
    assert str(registry.get_model_version_by_alias(NAME, "champion").version) == "1"


def test_cli_analyze_then_promote_dry_run(tmp_path, overlay):
    from housing.cli import app

    log = tmp_path / "log"
    log.mkdir()
    with (log / "inference-20250101T000000-000000.jsonl").open("w") as fh:
        for record in ab_records(7000, seed=81, challenger_noise=0.28):
            fh.write(json.dumps(record) + "\n")
    out_json, out_md = tmp_path / "v.json", tmp_path / "v.md"
    runner = CliRunner()
    params = tmp_path / "absent.yaml"  # a missing explicit params file is an error ...
    missing = runner.invoke(app, ["abtest", "analyze", "--log", str(log), "--params", str(params)])
    assert "file not found" in str(missing.exception)
    plan = tmp_path / "plan.json"
    planned = runner.invoke(
        app, ["abtest", "plan", "--mde", "0.05", "--mde-kind", "absolute", "--sd", "0.32", "--out", str(plan)]
    )
    assert planned.exit_code == 0, planned.output
    n = json.loads(plan.read_text())["n_per_arm"]
    assert planned.output.startswith(f"need {n} per arm")
    analyzed = runner.invoke(
        app,
        [
            "abtest",
            "analyze",
            "--log",
            str(log),
            "--plan",
            str(plan),
            "--out-json",
            str(out_json),
            "--out-md",
            str(out_md),
        ],
    )
    assert analyzed.exit_code == 0, analyzed.output
    assert analyzed.output.startswith("need ")  # the horizon is printed before the verdict
    assert "verdict: challenger_wins" in analyzed.output
    assert json.loads(out_json.read_text())["verdict"] == "challenger_wins"
    assert "`challenger_wins`" in out_md.read_text()
    promoted = runner.invoke(
        app, ["abtest", "promote", "--verdict", str(out_json), "--overlay", str(overlay), "--dry-run"]
    )
    assert promoted.exit_code == 0, promoted.output
    assert "dvc.lock pins sha-challenger" in promoted.output
    assert 'kustomize edit set image housing-model="$IMAGE"' in promoted.output
