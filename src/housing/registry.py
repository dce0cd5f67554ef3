"""MLflow tracking and model registry: log a run, register a version, promote and roll back @champion.

Shared by the register stage, CD (``housing promote --model-dir``), the A/B promotion and the closed loop.

Aliases only (MLflow's stages are deprecated). The champion's history is a linked list of version tags:
each promotion tags the new champion with the version it replaced, so ``rollback`` can walk back.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from housing.artifact import load_verified
from housing.config import RegisterParams
from housing.errors import RegistryError
from housing.results import RegisterResult
from housing.variants import Variant

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TAG_PREVIOUS = "champion.previous"
TAG_PROMOTED_AT = "champion.promoted_at"
TAG_ROLLED_BACK_AT = "champion.rolled_back_at"
LOWER_IS_BETTER = {"mae", "rmse", "mdape"}


def git_revision(cwd: Path | None = None) -> str:
    """HEAD's sha (suffixed ``-dirty`` when tracked files changed), or ``unknown`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _configure():
    """Point MLflow at the tracking store; keep artifacts of a local sqlite store beside the database."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return mlflow, uri


def _experiment_id(mlflow, uri: str, name: str) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///")).resolve()
        artifact_location = (database.parent / "mlartifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location)


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return out
    return {prefix: value}


def pip_requirements(*packages: str) -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in packages]


def register_model(
    model_dir: Path,
    cfg: RegisterParams,
    alias: Variant | None = Variant.CHALLENGER,
    *,
    signature: Any = None,
    log_extras: Callable[[Any], None] | None = None,
    extra_tags: dict[str, str] | None = None,
) -> RegisterResult:
    """Log the verified ONNX artifact of ``model_dir`` in a new run, register it as a version of
    ``cfg.model_name`` tagged with its provenance (``model_version`` is how a deployed or A/B-tested artifact
    is found again) and point ``alias`` (unless None) at it. ``log_extras(mlflow)`` logs more inside the
    same run.

    Idempotent: an artifact already registered (same ``model_version``, i.e. the same ONNX bytes) is not
    registered again; ``alias`` moves to its newest version (``"reused": true`` in the result).
    """
    import onnx

    mlflow, uri = _configure()
    metadata, payload = load_verified(model_dir)
    client = mlflow.MlflowClient()
    existing = _newest_tagged(client, cfg.model_name, metadata.model_version)
    if existing is not None:
        if alias is not None:
            client.set_registered_model_alias(cfg.model_name, alias, existing.version)
        return RegisterResult(
            model_name=cfg.model_name,
            version=str(existing.version),
            alias=alias,
            run_id=existing.run_id,
            model_version=metadata.model_version,
            tracking_uri=uri,
            reused=True,
        )
    tags = {
        "model_version": metadata.model_version,
        "onnx_sha256": metadata.onnx_sha256,
        "training_data_sha256": metadata.training_data_sha256,
        "holdout_sha256": metadata.holdout_sha256,
        "git_revision": git_revision(),
        **(extra_tags or {}),
    }
    experiment_id = _experiment_id(mlflow, uri, cfg.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=metadata.model_version) as run:
        mlflow.set_tags(tags)
        mlflow.log_metrics({k: float(v) for k, v in metadata.metrics.items()})
        if log_extras is not None:
            log_extras(mlflow)
        info = mlflow.onnx.log_model(
            onnx.load_from_string(payload),
            name="onnx_model",
            signature=signature,
            pip_requirements=pip_requirements("onnxruntime", "onnx", "numpy"),
            registered_model_name=cfg.model_name,
        )
        mlflow.log_dict(metadata.to_dict(), "onnx_model_metadata.json")
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(cfg.model_name, version, key, value)
    if alias is not None:
        client.set_registered_model_alias(cfg.model_name, alias, version)
    return RegisterResult(
        model_name=cfg.model_name,
        version=version,
        alias=alias,
        run_id=run.info.run_id,
        model_version=metadata.model_version,
        tracking_uri=uri,
        reused=False,
    )


def _newest_tagged(client, name: str, model_version: str):
    """The newest registered version of ``name`` tagged ``model_version`` (an exact artifact), or None."""
    from mlflow.exceptions import MlflowException

    escaped = name.replace("'", "\\'")
    try:
        found = client.search_model_versions(f"name='{escaped}'")
    except MlflowException:  # the registered model does not exist yet
        return None
    candidates = [v for v in found if v.tags.get("model_version") == model_version]
    return max(candidates, key=lambda v: int(v.version)) if candidates else None


def version_by_model_version(cfg: RegisterParams, model_version: str) -> str:
    """The newest registered version of ``cfg.model_name`` tagged ``model_version`` (an exact artifact)."""
    mlflow, uri = _configure()
    found = _newest_tagged(mlflow.MlflowClient(), cfg.model_name, model_version)
    if found is None:
        raise RegistryError(
            f"registry {uri}: no version of model {cfg.model_name!r} is tagged "
            f"model_version={model_version!r}; register that artifact first (housing register)"
        )
    return str(found.version)


def alias_version(cfg: RegisterParams, alias: Variant) -> str | None:
    """The version number ``alias`` points at, or None."""
    mlflow, _ = _configure()
    found = _version_by_alias(mlflow.MlflowClient(), cfg.model_name, alias)
    return None if found is None else str(found.version)


def fetch_model(cfg: RegisterParams, alias: Variant, out_dir: Path) -> dict[str, Any]:
    """Materialise the version ``alias`` points at as a model directory the server loads (model.onnx +
    metadata.json), verified against the metadata's sha256. ``out_dir`` is replaced only on success."""
    import shutil
    import tempfile

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per file drowns the output
    mlflow, uri = _configure()
    client = mlflow.MlflowClient()
    version = _version_by_alias(client, cfg.model_name, alias)
    if version is None:
        raise RegistryError(f"registry {uri}: model {cfg.model_name!r} has no @{alias}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        downloaded = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{cfg.model_name}@{alias}", dst_path=str(staging / "mlflow")
            )
        )
        metadata_file = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path="onnx_model_metadata.json", dst_path=str(staging / "run")
        )
        shutil.copyfile(downloaded / "model.onnx", staging / "model.onnx")
        shutil.copyfile(metadata_file, staging / "metadata.json")
        shutil.rmtree(staging / "mlflow")
        shutil.rmtree(staging / "run")
        metadata, _ = load_verified(staging)  # sha256 of the ONNX file against the metadata
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {
        "model_name": cfg.model_name,
        "alias": alias,
        "version": str(version.version),
        "model_version": metadata.model_version,
        "model_dir": str(out_dir),
    }


def _version_by_alias(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _metric(client, version, metric: str) -> float:
    value = client.get_run(version.run_id).data.metrics.get(metric)
    if value is None:
        raise RegistryError(f"model version {version.version}: run {version.run_id} has no metric {metric!r}")
    return float(value)


def promote(cfg: RegisterParams, version: str | None = None, force: bool = False) -> dict[str, Any]:
    """Move @champion to ``version`` (default @challenger) if it is at least as good on the same holdout."""
    mlflow, _ = _configure()
    client = mlflow.MlflowClient()
    if version is None:
        candidate = _version_by_alias(client, cfg.model_name, Variant.CHALLENGER)
        if candidate is None:
            raise RegistryError(f"registry: model {cfg.model_name!r} has no @{Variant.CHALLENGER} to promote")
    else:
        candidate = client.get_model_version(cfg.model_name, version)
    champion = _version_by_alias(client, cfg.model_name, Variant.CHAMPION)
    rule = cfg.promote
    decision: dict[str, Any] = {
        "model_name": cfg.model_name,
        "candidate": str(candidate.version),
        "metric": rule.metric,
    }
    if champion is not None and champion.version == candidate.version:
        return {
            **decision,
            "promoted": False,
            "reason": f"version {candidate.version} is already @{Variant.CHAMPION}",
        }
    if champion is not None and not force:
        if rule.require_same_holdout and candidate.tags.get("holdout_sha256") != champion.tags.get(
            "holdout_sha256"
        ):
            raise RegistryError(
                f"promote: versions {candidate.version} and {champion.version} were evaluated on different "
                "holdouts (tag holdout_sha256 differs); compare them on the same data or use --force"
            )
        new, old = _metric(client, candidate, rule.metric), _metric(client, champion, rule.metric)
        better_or_equal = (
            new <= old + rule.tolerance if rule.metric in LOWER_IS_BETTER else new >= old - rule.tolerance
        )
        decision.update({"candidate_value": new, "champion": str(champion.version), "champion_value": old})
        if not better_or_equal:
            return {
                **decision,
                "promoted": False,
                "reason": f"{rule.metric} {new:.4f} is worse than the champion's {old:.4f} "
                f"(tolerance {rule.tolerance})",
            }
    now = datetime.now(UTC).isoformat(timespec="seconds")
    previous = str(champion.version) if champion else None
    client.set_model_version_tag(cfg.model_name, candidate.version, TAG_PREVIOUS, previous or "")
    client.set_model_version_tag(cfg.model_name, candidate.version, TAG_PROMOTED_AT, now)
    client.set_registered_model_alias(cfg.model_name, Variant.CHAMPION, candidate.version)
    return {**decision, "promoted": True, "champion": str(candidate.version), "previous": previous}


def rollback(cfg: RegisterParams) -> dict[str, Any]:
    """Point @champion back at the version it replaced."""
    mlflow, _ = _configure()
    client = mlflow.MlflowClient()
    champion = _version_by_alias(client, cfg.model_name, Variant.CHAMPION)
    if champion is None:
        raise RegistryError(f"rollback: model {cfg.model_name!r} has no @{Variant.CHAMPION}")
    previous = champion.tags.get(TAG_PREVIOUS, "")
    if not previous:
        raise RegistryError(
            f"rollback: @{Variant.CHAMPION} (version {champion.version}) has no previous champion to roll "
            "back to"
        )
    client.set_model_version_tag(
        cfg.model_name, champion.version, TAG_ROLLED_BACK_AT, datetime.now(UTC).isoformat(timespec="seconds")
    )
    client.set_registered_model_alias(cfg.model_name, Variant.CHAMPION, previous)
    return {"model_name": cfg.model_name, "champion": previous, "rolled_back_from": str(champion.version)}
