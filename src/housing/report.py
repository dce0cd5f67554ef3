"""Markdown experiment report for pull requests: ``housing report`` writes it, CML posts it.

The report compares the workspace (this PR's pipeline outputs) with a base revision (``main``):

- metrics of the test split and of the model artifact, with the change against the base, from
  ``dvc metrics diff --json --all <base>`` (the base may have no metrics yet: its column then says so);
- parameters that changed, from ``dvc params diff --json <base>``;
- gate verdicts: ``params.yaml`` ``evaluate.gates`` (``<metric>_min`` / ``<metric>_max``) against the metrics;
- slice metrics (``reports/slices.json``), the drift summary (``reports/drift.json``) with a pointer to the
  Evidently HTML (a workflow artifact), model size and latency;
- the evaluation figures: links to the workflow artifact that holds them (``--figures-url``; a PR comment
  cannot show a runner's files), or Markdown images with paths relative to the report (local viewing, or a
  repository that opted in to CML's publishing, which uploads them);
- when the pipeline failed (``--pipeline-outcome failure --pipeline-log FILE``): the stage that failed and
  its error lines, and for missed gates the new metrics from ``reports/evaluation_failed.json``.

``build_report`` does the reading (typed errors naming the file for missing or garbled inputs);
``render_report`` is a pure function from the collected data to Markdown.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from housing import paths
from housing.dvc_remote import dvc_executable
from housing.errors import DataError
from housing.timings import read_timings

DVC_TIMEOUT_S = 300
PARAMS_FILE = Path("params.yaml")
DEFAULT_DRIFT_ARTIFACT = "drift-report"

# Direction of "better" per metric; metrics not listed are shown without a verdict.
HIGHER_IS_BETTER = frozenset({"r2", "ppe10", "ppe20"})
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mdape", "cost_usd_per_house"})
CLOSER_TO_ZERO_IS_BETTER = frozenset({"bias"})

FIGURE_TITLES = {
    "pred_vs_actual.png": "Predicted vs actual",
    "residuals.png": "Residuals",
    "feature_importance.png": "Permutation importance",
}


class ReportError(DataError):
    """An input of the report is missing, unreadable or not shaped as expected (the message names it)."""


# --- data ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricRow:
    name: str  # e.g. "test.r2" or "model.onnx_bytes"
    old: float | None
    new: float | None

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class ParamChange:
    name: str
    old: Any
    new: Any


@dataclass(frozen=True)
class GateVerdict:
    gate: str
    metric: str
    op: str  # ">=" or "<="
    threshold: float
    value: float

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold


@dataclass(frozen=True)
class PipelineRun:
    """How the pipeline run the report describes ended (from the CI step's outcome and its log)."""

    failed: bool
    failed_stage: str | None = None  # the dvc.yaml stage DVC failed to reproduce, when the log says
    errors: tuple[str, ...] = ()  # the error lines of the log (housing's "error: ..." and DVC's "ERROR: ...")
    metrics_current: bool = True  # False: it stopped before evaluate, so reports/metrics.json is older

    @property
    def status(self) -> str:
        if not self.failed:
            return "succeeded"
        return f"failed at `{self.failed_stage}`" if self.failed_stage else "failed"


@dataclass(frozen=True)
class ReportData:
    base: str
    head: str
    metrics: list[MetricRow]
    base_has_metrics: bool
    params: list[ParamChange]
    gates: list[GateVerdict]
    slices: dict[str, dict[str, dict[str, Any]]] | None
    drift: dict[str, Any] | None
    drift_base_score: float | None
    model: dict[str, Any]
    figures: list[tuple[str, str]]  # (title, path relative to the report)
    drift_artifact: str = DEFAULT_DRIFT_ARTIFACT
    run_url: str | None = None
    missing: list[str] = field(default_factory=list)
    figures_omitted: bool = False
    figures_url: str | None = None  # where the figures are (a workflow artifact): linked, not embedded
    pipeline: PipelineRun = PipelineRun(failed=False)
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)  # reports/timings.json of this run


# --- reading ---------------------------------------------------------------------------------------------


def _dvc_json(repo_root: Path, *args: str) -> dict[str, Any]:
    command = [dvc_executable(), *args]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    try:
        result = subprocess.run(
            command,
            cwd=repo_root,
            capture_output=True,
            text=True,
            timeout=DVC_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ReportError(f"`dvc {' '.join(args)}` timed out after {DVC_TIMEOUT_S} s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ReportError(
            f"`dvc {' '.join(args)}` failed in {repo_root}: {detail[-1] if detail else 'no output'}"
        )
    try:
        document = json.loads(result.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise ReportError(f"`dvc {' '.join(args)}`: output is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ReportError(f"`dvc {' '.join(args)}`: expected a JSON object, got {type(document).__name__}")
    return document


def _read_json(path: Path, label: str, *, required: bool) -> dict[str, Any] | None:
    """Read a JSON object; ``None`` when an optional file is absent. ``label`` names the file in errors."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise ReportError(f"{label}: not found (run the pipeline first: dvc repro)") from None
        return None
    except OSError as exc:
        raise ReportError(f"{label}: cannot be read ({exc.strerror})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{label}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(document, dict):
        raise ReportError(f"{label}: expected a JSON object at the top level, got {type(document).__name__}")
    return document


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReportError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _git_head(repo_root: Path) -> str:
    git = shutil.which("git")
    if git is None:
        return "workspace"
    result = subprocess.run(
        [git, "rev-parse", "--short=12", "HEAD"], cwd=repo_root, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "workspace"


def metric_rows(diff: dict[str, Any], metrics_label: str) -> tuple[list[MetricRow], bool]:
    """Rows of ``dvc metrics diff --json --all`` for the metrics file; also whether the base had any value."""
    entries = diff.get(metrics_label, {})
    if not isinstance(entries, dict):
        raise ReportError(f"dvc metrics diff: entry {metrics_label!r} is not an object")
    rows = []
    for name, change in entries.items():
        if not isinstance(change, dict) or not name.startswith(("test.", "model.")):
            continue
        old, new = change.get("old"), change.get("new")
        if isinstance(old, str) or isinstance(new, str):
            continue  # e.g. model.version: shown in the model section, not as a metric
        rows.append(
            MetricRow(
                name,
                None if old is None else _number(old, f"base {metrics_label}: {name}"),
                None if new is None else _number(new, f"{metrics_label}: {name}"),
            )
        )
    return rows, any(row.old is not None for row in rows)


def param_changes(diff: dict[str, Any]) -> list[ParamChange]:
    changes = []
    for file_name, entries in sorted(diff.items()):
        if not isinstance(entries, dict):
            continue
        for name, change in sorted(entries.items()):
            if isinstance(change, dict) and change.get("old") != change.get("new"):
                label = name if file_name == str(PARAMS_FILE) else f"{file_name}:{name}"
                changes.append(ParamChange(label, change.get("old"), change.get("new")))
    return changes


def gate_verdicts(gates: dict[str, float], test_metrics: dict[str, Any], label: str) -> list[GateVerdict]:
    """``<metric>_min`` gates need value >= threshold, ``<metric>_max`` gates value <= threshold."""
    verdicts = []
    for gate, threshold in gates.items():
        metric, _, kind = gate.rpartition("_")
        if kind not in ("min", "max") or not metric:
            raise ReportError(f"params.yaml: evaluate.gates.{gate}: gate names must end in _min or _max")
        if metric not in test_metrics:
            raise ReportError(f"{label}: test.{metric} missing (needed by gate evaluate.gates.{gate})")
        value = _number(test_metrics[metric], f"{label}: test.{metric}")
        verdicts.append(GateVerdict(gate, metric, ">=" if kind == "min" else "<=", float(threshold), value))
    return verdicts


def _check_slices(slices: dict[str, Any], label: str) -> dict[str, dict[str, dict[str, Any]]]:
    for group, members in slices.items():
        if not isinstance(members, dict) or not all(isinstance(m, dict) for m in members.values()):
            raise ReportError(f"{label}: slice group {group!r} must map slice names to metric objects")
    return slices


def _check_drift(drift: dict[str, Any], label: str) -> dict[str, Any]:
    for key in ("drift_score", "threshold"):
        if key not in drift:
            raise ReportError(f"{label}: key {key!r} missing")
        _number(drift[key], f"{label}: {key}")
    if not isinstance(drift.get("retrain_recommended"), bool):
        raise ReportError(f"{label}: retrain_recommended must be true or false")
    if not isinstance(drift.get("drifted_features", []), list):
        raise ReportError(f"{label}: drifted_features must be a list")
    return drift


def figures(repo_root: Path, output: Path) -> list[tuple[str, str]]:
    """Evaluation PNGs (known ones first), as (title, path relative to the report's directory)."""
    directory = repo_root / paths.FIGURES
    if not directory.is_dir():
        return []
    order = list(FIGURE_TITLES)
    found = sorted(
        directory.glob("*.png"),
        key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name),
    )
    out = []
    for figure in found:
        title = FIGURE_TITLES.get(figure.name, figure.stem.replace("_", " ").capitalize())
        relative = Path(os.path.relpath(figure.resolve(), output.resolve().parent)).as_posix()
        out.append((title, relative))
    return out


MAX_ERROR_LINES = 12


def pipeline_run(outcome: str, log: Path | None) -> PipelineRun:
    """Read how the pipeline ended: ``outcome`` is the CI step's (success/failure), ``log`` its output."""
    import re

    from housing.stages import STAGES

    if outcome not in ("success", "failure"):
        raise ReportError(f"--pipeline-outcome: expected success or failure, got {outcome!r}")
    if outcome == "success":
        return PipelineRun(failed=False)
    text = ""
    if log is not None:
        try:
            text = log.read_text(errors="replace")
        except OSError as exc:
            raise ReportError(f"{log}: pipeline log cannot be read ({exc.strerror})") from None
    errors = [line.strip() for line in text.splitlines() if line.lstrip().startswith(("error:", "ERROR:"))][
        -MAX_ERROR_LINES:
    ]
    failed = re.findall(r"failed to reproduce '([\w-]+)'", text)
    stage = failed[-1] if failed else None
    # A stage failing after evaluate leaves a current reports/metrics.json; one before it, the last one.
    current = stage in STAGES[STAGES.index("evaluate") + 1 :]
    return PipelineRun(True, stage, tuple(errors), metrics_current=current)


def collect(
    repo_root: Path,
    base: str,
    output: Path,
    *,
    drift_artifact: str = DEFAULT_DRIFT_ARTIFACT,
    run_url: str | None = None,
    pipeline: PipelineRun = PipelineRun(failed=False),
) -> ReportData:
    """Read everything the report shows. Raises :class:`ReportError` naming the file or command at fault."""
    from housing.config import load_params

    repo_root = repo_root.resolve()
    if not (repo_root / "dvc.yaml").is_file():
        raise ReportError(f"{repo_root}: no dvc.yaml here; pass --repo-root of the project")
    metrics_label = paths.METRICS_JSON.as_posix()
    metrics = _read_json(repo_root / paths.METRICS_JSON, metrics_label, required=True) or {}
    # Missed gates: evaluate kept the last good metrics.json and wrote this run's metrics beside it.
    failed_label = paths.EVALUATION_FAILED_JSON.as_posix()
    failed_evaluation = None
    if pipeline.failed:
        failed_evaluation = _read_json(repo_root / paths.EVALUATION_FAILED_JSON, failed_label, required=False)
    if failed_evaluation is not None:
        metrics, metrics_label = failed_evaluation, failed_label
    test_metrics = metrics.get("test")
    if not isinstance(test_metrics, dict):
        raise ReportError(f"{metrics_label}: key 'test' missing or not an object")
    model = metrics.get("model", {})
    if not isinstance(model, dict):
        raise ReportError(f"{metrics_label}: key 'model' is not an object")
    params = load_params(repo_root / PARAMS_FILE)
    evaluated = pipeline.metrics_current or failed_evaluation is not None
    gates = (
        gate_verdicts(params.evaluate.gates.model_dump(), test_metrics, metrics_label) if evaluated else []
    )

    missing = []
    slices_label = paths.SLICES_JSON.as_posix()
    slices = _read_json(repo_root / paths.SLICES_JSON, slices_label, required=False)
    if slices is None:
        missing.append(slices_label)
    drift_label = paths.DRIFT_JSON.as_posix()
    drift = _read_json(repo_root / paths.DRIFT_JSON, drift_label, required=False)
    if drift is None:
        missing.append(drift_label)
    if slices is not None:
        _check_slices(slices, slices_label)
    if drift is not None:
        _check_drift(drift, drift_label)

    metrics_diff = _dvc_json(repo_root, "metrics", "diff", "--json", "--all", base)
    rows, base_has_metrics = metric_rows(metrics_diff, paths.METRICS_JSON.as_posix())
    if failed_evaluation is not None or not pipeline.metrics_current:
        # The workspace's metrics.json is not this run's: keep the base values, take the new ones from the
        # failed evaluation (or show none when the pipeline stopped before evaluating).
        current = {f"test.{k}": v for k, v in test_metrics.items()} if failed_evaluation else {}
        current |= {f"model.{k}": v for k, v in model.items()} if failed_evaluation else {}
        rows = [
            MetricRow(row.name, row.old, _number(current[row.name], f"{failed_label}: {row.name}"))
            if isinstance(current.get(row.name), int | float)
            else MetricRow(row.name, row.old, None)
            for row in rows
        ]
    changes = param_changes(_dvc_json(repo_root, "params", "diff", "--json", base))
    # dvc metrics diff skips non-numeric values: make sure every test metric of the file is shown.
    shown = {row.name for row in rows}
    for name, value in test_metrics.items() if evaluated else ():
        if f"test.{name}" not in shown:
            rows.append(MetricRow(f"test.{name}", None, _number(value, f"{metrics_label}: test.{name}")))
    # Keep the order of the metrics file (r2, mae, ... as evaluate writes them), then anything else.
    order = [f"test.{name}" for name in test_metrics] + [f"model.{name}" for name in model]
    rows.sort(key=lambda row: (order.index(row.name) if row.name in order else len(order), row.name))

    drift_base_score = None
    if drift is not None:
        drift_diff = metrics_diff.get(drift_label)
        base_drift = drift_diff.get("drift_score") if isinstance(drift_diff, dict) else None
        old = base_drift.get("old") if isinstance(base_drift, dict) else None
        drift_base_score = None if old is None else _number(old, f"base {drift_label}: drift_score")
    onnx = repo_root / paths.MODELS / "model.onnx"
    model = dict(model)
    if "onnx_bytes" not in model and onnx.is_file():
        model["onnx_bytes"] = onnx.stat().st_size
    return ReportData(
        base=base,
        head=_git_head(repo_root),
        metrics=rows,
        base_has_metrics=base_has_metrics,
        params=changes,
        gates=gates,
        slices=slices,
        drift=drift,
        drift_base_score=drift_base_score,
        model=model,
        figures=figures(repo_root, output),
        drift_artifact=drift_artifact,
        run_url=run_url,
        missing=missing,
        pipeline=pipeline,
        timings=read_timings(repo_root / paths.TIMINGS_JSON),  # volatile, untracked: shown, never compared
    )


# --- rendering -------------------------------------------------------------------------------------------


def _fmt(value: Any, name: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (
        isinstance(value, float) and value.is_integer() and name in ("n", "onnx_bytes")
    ):
        return f"{int(value):,}"
    if isinstance(value, float):
        if name.startswith("cost"):
            return f"{value:,.0f}"
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    return str(value)


def _verdict(name: str, old: float, new: float) -> str:
    if new == old:
        return "="
    if name in HIGHER_IS_BETTER:
        better = new > old
    elif name in LOWER_IS_BETTER:
        better = new < old
    elif name in CLOSER_TO_ZERO_IS_BETTER:
        if abs(new) == abs(old):
            return "="
        better = abs(new) < abs(old)
    else:
        return ""
    return "🟢 better" if better else "🔴 worse"


def _change(row: MetricRow) -> tuple[str, str]:
    if row.old is None or row.new is None:
        return "new" if row.old is None else "removed", ""
    delta = row.new - row.old
    relative = f" ({delta / abs(row.old):+.1%})" if row.old != 0 else ""
    if row.short in ("n", "onnx_bytes") or row.short.startswith("cost"):
        text = f"{delta:+,.0f}{relative}"
    else:
        text = f"{delta:+.4f}{relative}"
    return text, _verdict(row.short, row.old, row.new)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _metrics_section(data: ReportData) -> list[str]:
    lines = ["## Metrics (test split)", ""]
    if not data.base_has_metrics:
        lines += [f"_`{data.base}` has no metrics yet: nothing to compare against._", ""]
    rows = []
    for row in data.metrics:
        if not row.name.startswith("test."):
            continue
        change, verdict = _change(row)
        rows.append([row.short, _fmt(row.old, row.short), _fmt(row.new, row.short), change, verdict])
    return [*lines, *_table(["metric", f"base `{data.base}`", "this change", "Δ", ""], rows), ""]


def _gates_section(data: ReportData) -> list[str]:
    if not data.gates:
        return [
            "## Quality gates",
            "",
            "_Not evaluated: the pipeline stopped before the evaluate stage._",
            "",
        ]
    failed = [g for g in data.gates if not g.passed]
    headline = (
        f"**{len(failed)} of {len(data.gates)} gate(s) failed.**"
        if failed
        else f"All {len(data.gates)} gate(s) passed."
    )
    rows = [
        [
            f"`evaluate.gates.{g.gate}`",
            f"{g.metric} {g.op} {_fmt(g.threshold)}",
            _fmt(g.value),
            "✅ pass" if g.passed else "❌ fail",
        ]
        for g in data.gates
    ]
    return ["## Quality gates", "", headline, "", *_table(["gate", "rule", "value", "verdict"], rows), ""]


def _params_section(data: ReportData) -> list[str]:
    lines = ["## Parameters changed", ""]
    if not data.params:
        return [*lines, f"_No parameter differs from `{data.base}`._", ""]
    rows = [[f"`{p.name}`", _fmt(p.old), _fmt(p.new)] for p in data.params]
    return [*lines, *_table(["param", f"base `{data.base}`", "this change"], rows), ""]


def _slices_section(data: ReportData) -> list[str]:
    lines = ["## Slices", ""]
    if data.slices is None:
        return [*lines, f"_Not available: `{paths.SLICES_JSON.as_posix()}` was not produced._", ""]
    for group, members in data.slices.items():
        columns: list[str] = []
        for metrics in members.values():
            columns += [key for key in metrics if key not in columns]
        rows = [[name, *(_fmt(metrics.get(c), c) for c in columns)] for name, metrics in members.items()]
        lines += [f"**{group}**", "", *_table(["slice", *columns], rows), ""]
    return lines


def _drift_section(data: ReportData) -> list[str]:
    lines = ["## Data drift (reference sample vs production window)", ""]
    drift = data.drift
    if drift is None:
        return [*lines, f"_Not available: `{paths.DRIFT_JSON.as_posix()}` was not produced._", ""]
    drifted = drift.get("drifted_features") or []
    base = "" if data.drift_base_score is None else f" (base `{data.base}`: {data.drift_base_score:.3f})"
    recommended = "**yes**" if drift["retrain_recommended"] else "no"
    lines += [
        f"- drift score: **{drift['drift_score']:.3f}**{base}, threshold {drift['threshold']:.3f} "
        "(share of drifted features)",
        f"- drifted features: {', '.join(f'`{f}`' for f in drifted) if drifted else 'none'}",
        f"- retrain recommended: {recommended}",
    ]
    if "n_reference" in drift and "n_current" in drift:
        lines.append(
            f"- rows: reference {_fmt(drift['n_reference'], 'n')}, window {_fmt(drift['n_current'], 'n')}"
        )
    evidently = drift.get("evidently")
    if isinstance(evidently, dict) and "agrees" in evidently:
        agrees = "agrees" if evidently["agrees"] else "**disagrees**"
        lines.append(f"- Evidently cross-check {agrees} with the native tests")
    where = f"[workflow run]({data.run_url})" if data.run_url else "this workflow run"
    lines += [
        f"- Evidently HTML report: artifact `{data.drift_artifact}` of {where} "
        f"(`{paths.DRIFT_HTML.as_posix()}`)",
        "",
    ]
    features = drift.get("features")
    if isinstance(features, dict) and features:
        rows = []
        for name, result in features.items():
            if not isinstance(result, dict):
                continue
            rows.append(
                [
                    name,
                    str(result.get("test", "")),
                    _fmt(result.get("statistic")),
                    _fmt(result.get("p_value")),
                    _fmt(result.get("psi")),
                    "⚠️ drifted" if result.get("drifted") else "ok",
                ]
            )
        lines += [
            "<details><summary>Per-feature tests</summary>",
            "",
            *_table(["feature", "test", "statistic", "p-value", "PSI", ""], rows),
            "",
            "</details>",
            "",
        ]
    return lines


def _model_section(data: ReportData) -> list[str]:
    lines = ["## Model artifact", ""]
    if data.model.get("version"):
        lines += [f"Model version `{data.model['version']}`.", ""]
    rows = []
    size = next((row for row in data.metrics if row.name == "model.onnx_bytes"), None)
    if size is not None:
        rows.append(
            ["ONNX size (bytes)", _fmt(size.old, "onnx_bytes"), _fmt(size.new, "onnx_bytes"), *_change(size)]
        )
    latency = data.timings.get("evaluate", {}).get("onnx_latency_ms_p50")
    if isinstance(latency, int | float):
        # Machine- and load-dependent: measured on this run's runner, so not compared with the base.
        rows.append(["ONNX latency p50, 1 row (ms, this runner)", "—", _fmt(float(latency)), "", ""])
    if not rows:
        return [*lines, "_Model size and latency not recorded._", ""]
    return [*lines, *_table(["", f"base `{data.base}`", "this change", "Δ", ""], rows), ""]


def _figures_section(data: ReportData) -> list[str]:
    lines = ["## Evaluation plots", ""]
    if data.figures_omitted:
        where = f"the [workflow run]({data.run_url})" if data.run_url else "the workflow run"
        return [*lines, f"_Omitted here: see the CI report comment or {where}._", ""]
    if not data.figures:
        return [*lines, f"_No figures in `{paths.FIGURES.as_posix()}`._", ""]
    if data.figures_url:
        names = ", ".join(f"{title} (`{Path(path).name}`)" for title, path in data.figures)
        return [*lines, f"{names}: in the [workflow artifact]({data.figures_url}) of this run.", ""]
    for title, path in data.figures:
        lines += [f"### {title}", "", f"![{title}]({path})", ""]
    return lines


def _pipeline_section(data: ReportData) -> list[str]:
    run = data.pipeline
    if not run.failed:
        return []
    lines = [f"## ❌ The pipeline {run.status}", ""]
    if not run.metrics_current and not any(row.new is not None for row in data.metrics):
        lines += ["It stopped before the evaluate stage: this change has no metrics.", ""]
    if run.errors:
        lines += ["```", *run.errors, "```", ""]
    else:
        lines += ["_No error lines in the pipeline log; see the workflow run._", ""]
    return lines


def render_report(data: ReportData) -> str:
    """The report as Markdown (GitHub flavour)."""
    failed = [g for g in data.gates if not g.passed]
    if failed:
        status = "❌ gates failed"
    elif data.pipeline.failed:
        status = f"❌ pipeline {data.pipeline.status}"
    else:
        status = "✅ gates passed"
    lines = [f"# Model report: `{data.head}` vs `{data.base}` — {status}", ""]
    if data.missing:
        lines += [f"> Missing inputs: {', '.join(f'`{m}`' for m in data.missing)}", ""]
    for section in (
        _pipeline_section,
        _metrics_section,
        _gates_section,
        _params_section,
        _slices_section,
        _drift_section,
        _model_section,
        _figures_section,
    ):
        lines += section(data)
    return "\n".join(lines).rstrip() + "\n"


def build_report(
    repo_root: Path,
    base: str,
    output: Path,
    *,
    drift_artifact: str = DEFAULT_DRIFT_ARTIFACT,
    run_url: str | None = None,
    include_figures: bool = True,
    figures_url: str | None = None,
    pipeline: PipelineRun = PipelineRun(failed=False),
) -> ReportData:
    """Collect, render and write the report to ``output`` (relative paths: relative to ``repo_root``)."""
    output = output if output.is_absolute() else repo_root / output
    data = collect(repo_root, base, output, drift_artifact=drift_artifact, run_url=run_url, pipeline=pipeline)
    data = replace(data, figures_url=figures_url)
    if not include_figures:
        data = replace(data, figures=[], figures_omitted=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_report(data))
    return data


# --- CLI -------------------------------------------------------------------------------------------------


def report(
    base: Annotated[str, typer.Option(help="Git revision to compare with (branch, tag or sha).")] = "main",
    output: Annotated[
        Path, typer.Option(help="Markdown file to write (relative paths: relative to --repo-root).")
    ] = Path("report.md"),
    repo_root: Annotated[Path, typer.Option(help="Repository root (holds dvc.yaml).")] = Path(),
    drift_artifact: Annotated[
        str, typer.Option(help="Name of the workflow artifact holding the Evidently HTML.")
    ] = DEFAULT_DRIFT_ARTIFACT,
    include_figures: Annotated[
        bool,
        typer.Option(
            "--figures/--no-figures",
            help="Show the evaluation plots (off for PR bodies, which cannot link a run's artifacts).",
        ),
    ] = True,
    figures_url: Annotated[
        str | None,
        typer.Option(help="URL of the workflow artifact holding the figures: link it instead of embedding."),
    ] = None,
    run_url: Annotated[
        str | None, typer.Option(help="URL of the workflow run (its artifacts hold the drift HTML).")
    ] = None,
    pipeline_outcome: Annotated[
        str, typer.Option(help="How the pipeline step ended: success or failure (CI passes its outcome).")
    ] = "success",
    pipeline_log: Annotated[
        Path | None, typer.Option(help="The pipeline step's output: failed stage and error lines.")
    ] = None,
) -> None:
    """Write the PR report: metrics diff vs --base, gates, params diff, slices, drift, model, plots."""
    data = build_report(
        repo_root,
        base,
        output,
        drift_artifact=drift_artifact,
        run_url=run_url,
        include_figures=include_figures,
        figures_url=figures_url,
        pipeline=pipeline_run(pipeline_outcome, pipeline_log),
    )
    failed = sum(not g.passed for g in data.gates)
    target = output if output.is_absolute() else repo_root / output
    typer.echo(
        f"report -> {target} ({len(data.metrics)} metrics vs {base}, {len(data.params)} param change(s), "
        f"{failed} failed gate(s), {len(data.figures)} figure(s), pipeline {data.pipeline.status})"
    )


def register(app: typer.Typer, simulate: typer.Typer) -> None:  # noqa: ARG001
    """Add ``housing report`` to the root app."""
    app.command("report")(report)
