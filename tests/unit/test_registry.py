"""Promotion and rollback rules against a real MLflow sqlite store in a temp directory."""

from pathlib import Path

import pytest

from housing.config import RegisterParams
from housing.errors import RegistryError
from housing.registry import promote, rollback

NAME = "housing-test"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)

    def add_challenger(mae: float, holdout: str = "holdout-1") -> str:
        with mlflow.start_run() as run:
            mlflow.log_metric("mae", mae)
        version = client.create_model_version(
            NAME, source=f"{run.info.artifact_uri}/m", run_id=run.info.run_id
        )
        client.set_model_version_tag(NAME, version.version, "holdout_sha256", holdout)
        client.set_registered_model_alias(NAME, "challenger", version.version)
        return str(version.version)

    add_challenger.client = client
    return add_challenger


def _champion(client) -> str:
    return str(client.get_model_version_by_alias(NAME, "champion").version)


def test_first_challenger_becomes_champion(store):
    v1 = store(0.30)
    result = promote(RegisterParams(model_name=NAME))
    assert result["promoted"] is True
    assert _champion(store.client) == v1


def test_better_or_equal_challenger_is_promoted_worse_is_not(store):
    cfg = RegisterParams(model_name=NAME)
    store(0.30)
    promote(cfg)
    v2 = store(0.31)
    refused = promote(cfg)
    assert refused["promoted"] is False
    assert "worse than the champion" in refused["reason"]
    assert _champion(store.client) != v2
    v3 = store(0.30)
    assert promote(cfg)["promoted"] is True
    assert _champion(store.client) == v3


def test_tolerance_allows_a_small_regression(store):
    cfg = RegisterParams(model_name=NAME, promote={"tolerance": 0.02})
    store(0.30)
    promote(cfg)
    v2 = store(0.31)
    assert promote(cfg)["promoted"] is True
    assert _champion(store.client) == v2


def test_different_holdouts_cannot_be_compared_unless_forced(store):
    cfg = RegisterParams(model_name=NAME)
    store(0.30, holdout="a")
    promote(cfg)
    v2 = store(0.10, holdout="b")
    with pytest.raises(RegistryError, match="different holdouts"):
        promote(cfg)
    assert promote(cfg, force=True)["promoted"] is True
    assert _champion(store.client) == v2


def test_rollback_walks_back_through_the_history(store):
    cfg = RegisterParams(model_name=NAME)
    v1 = store(0.30)
    promote(cfg)
    v2 = store(0.29)
    promote(cfg)
    v3 = store(0.28)
    promote(cfg)
    assert _champion(store.client) == v3
    assert rollback(cfg) == {"model_name": NAME, "champion": v2, "rolled_back_from": v3}
    assert rollback(cfg)["champion"] == v1
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(cfg)


def test_errors_when_aliases_are_missing(store):
    cfg = RegisterParams(model_name=NAME)
    with pytest.raises(RegistryError, match="no @challenger"):
        promote(cfg)
    with pytest.raises(RegistryError, match="no @champion"):
        rollback(cfg)


def test_promote_by_model_dir_picks_the_version_tagged_with_its_model_version(store, model_dir, tmp_path):
    """CD's `housing promote --model-dir models --force`: the alias follows the artifact that now serves."""
    from typer.testing import CliRunner

    from housing.artifact import read_metadata
    from housing.cli import app

    deployed = store(0.30)
    other = store(0.29)
    store.client.set_model_version_tag(
        NAME, deployed, "model_version", read_metadata(model_dir).model_version
    )
    store.client.set_model_version_tag(NAME, other, "model_version", "sha-000000000000")
    params = tmp_path / "params.yaml"
    params.write_text(
        Path("params.yaml").read_text().replace("model_name: california-housing", f"model_name: {NAME}")
    )

    result = CliRunner().invoke(
        app, ["promote", "--params", str(params), "--model-dir", str(model_dir), "--force"]
    )
    assert result.exit_code == 0, result.output
    assert _champion(store.client) == deployed

    store.client.delete_model_version_tag(NAME, deployed, "model_version")
    missing = CliRunner().invoke(app, ["promote", "--params", str(params), "--model-dir", str(model_dir)])
    assert missing.exit_code != 0
    assert read_metadata(model_dir).model_version in str(missing.exception)


def test_fetch_model_materialises_an_alias_as_a_servable_model_dir(tmp_path, monkeypatch, model_dir):
    from housing.artifact import load_verified
    from housing.registry import fetch_model, register_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    cfg = RegisterParams(model_name=NAME)
    registered = register_model(model_dir, cfg, "champion")
    out = tmp_path / "served"
    (out / "old").mkdir(parents=True)  # a previous download is replaced, not merged into
    fetched = fetch_model(cfg, "champion", out)
    assert fetched["version"] == registered.version
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "model.onnx"]
    assert (out / "model.onnx").read_bytes() == (model_dir / "model.onnx").read_bytes()
    assert load_verified(out)[0].model_version == registered.model_version

    with pytest.raises(RegistryError, match=f"model '{NAME}' has no @challenger"):
        fetch_model(cfg, "challenger", out)
    assert load_verified(out)[0].model_version == registered.model_version  # left as it was
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".served-")] == []


def test_registering_an_artifact_twice_reuses_its_version(tmp_path, monkeypatch, model_dir):
    """`dvc repro -f`, a rerun of register after a new drift report, or CD's --register-missing: the same
    ONNX bytes never become a second version."""
    from housing.registry import register_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    cfg = RegisterParams(model_name=NAME)
    first = register_model(model_dir, cfg)
    again = register_model(model_dir, cfg, alias=None)
    assert (first.reused, again.reused) == (False, True)
    assert again.version == first.version
    assert again.run_id == first.run_id
    import mlflow

    client = mlflow.MlflowClient()
    assert len(client.search_model_versions(f"name='{NAME}'")) == 1
    tags = client.get_model_version(NAME, first.version).tags
    assert tags["git_revision"]  # provenance is logged at registration, not baked into the artifact


def test_promote_register_missing_registers_the_deployed_artifact_first(tmp_path, monkeypatch, model_dir):
    """CD promotes what it deployed even when the pipeline ran against another tracking store."""
    from typer.testing import CliRunner

    from housing.artifact import read_metadata
    from housing.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    params = tmp_path / "params.yaml"
    params.write_text(
        Path("params.yaml").read_text().replace("model_name: california-housing", f"model_name: {NAME}")
    )
    args = ["promote", "--params", str(params), "--model-dir", str(model_dir), "--force"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0
    assert "no version of model" in str(refused.exception)
    done = CliRunner().invoke(app, [*args, "--register-missing"])
    assert done.exit_code == 0, done.output
    import mlflow

    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert champion.tags["model_version"] == read_metadata(model_dir).model_version
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(NAME, "challenger")  # @challenger untouched
