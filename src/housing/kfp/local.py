"""``housing kfp run --local``: the compiled pipeline run on this machine by ``kfp.local``.

The subprocess runner executes each component's embedded code with this environment's Python (no per-task
virtualenv, no container: the image the package names is not used), in the order and under the conditions of
the compiled graph. Each task writes its outputs and an ``executor_output.json`` under
``<pipeline root>/<pipeline>-<timestamp>/<task>/``, which is what :func:`summarize` reads.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

from housing.kfp.package import KfpError, require_kfp
from housing.strict import Strict

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class LocalRunResult(Strict):
    run_dir: Path
    seconds: float
    tasks: tuple[str, ...]  # the tasks that ran (a skipped branch's are absent)
    drift_score: float | None
    retrain: bool | None
    test_metrics: dict[str, float] | None  # the evaluate task's Metrics
    registered_version: str | None
    model_version: str | None


def absolute_tracking_uri(uri: str) -> str:
    """A relative sqlite store (``sqlite:///mlflow.db``) made absolute: tasks run in their own directories."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri.removeprefix(prefix)).resolve())
    return uri


def run_local(package: Path, arguments: dict[str, Any], pipeline_root: Path) -> LocalRunResult:
    """Run ``package`` with ``arguments``; task outputs go under ``pipeline_root``. A failed task raises
    :class:`KfpError` naming it (its own log, streamed above, has the one-line reason)."""
    require_kfp()
    from kfp import components, local

    root = pipeline_root.resolve()  # tasks run in their own working directories: artifact paths are absolute
    root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        workspace_root=str(root / "workspace"),
    )
    pipeline = components.load_component_from_file(str(package))
    before = set(root.iterdir())
    started = time.perf_counter()
    with warnings.catch_warnings():
        # The package names the component image; the subprocess runner uses this environment, and warns.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
        try:
            pipeline(**arguments)
        except RuntimeError as exc:
            raise KfpError(f"local run of {package} failed: {_ANSI.sub('', str(exc))}") from None
    seconds = round(time.perf_counter() - started, 1)
    (run_dir,) = [path for path in set(root.iterdir()) - before if path.is_dir()]
    return summarize(run_dir, seconds)


def _executor_output(run_dir: Path, task: str) -> dict[str, Any] | None:
    path = run_dir / task / "executor_output.json"
    return json.loads(path.read_text()) if path.exists() else None


def summarize(run_dir: Path, seconds: float) -> LocalRunResult:
    """What a finished local run decided and produced, from its tasks' executor outputs."""
    drift = _executor_output(run_dir, "drift") or {}
    decision = _executor_output(run_dir, "retrain-decision") or {}
    evaluate = _executor_output(run_dir, "evaluate")
    register = _executor_output(run_dir, "register") or {}
    metrics = None
    if evaluate is not None:
        metrics = evaluate["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    tasks = sorted(
        (path for path in run_dir.iterdir() if (path / "executor_output.json").exists()),
        key=lambda path: (path / "executor_output.json").stat().st_mtime_ns,
    )
    return LocalRunResult(
        run_dir=run_dir,
        seconds=seconds,
        tasks=tuple(path.name for path in tasks),
        drift_score=drift.get("parameterValues", {}).get("drift_score"),
        retrain=decision.get("parameterValues", {}).get("Output"),
        test_metrics=metrics,
        registered_version=register.get("parameterValues", {}).get("version"),
        model_version=register.get("parameterValues", {}).get("model_version"),
    )
