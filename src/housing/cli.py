"""``housing`` command line: a thin layer that parses flags, loads params once and calls typed stages.

Heavy libraries (sklearn, MLflow, Evidently) are imported inside the commands so that ``housing --help``
and ``housing serve`` start fast and the serving image needs no training stack.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from housing.config import DEFAULT_PARAMS_PATH, Params, load_params
from housing.errors import HousingError

app = typer.Typer(
    help="housing-mlops: California house values from data to a served model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
simulate_app = typer.Typer(help="Generate production windows and replay traffic.", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")

# Subpackages add their own commands; each module exposes register(app, simulate).
_COMMAND_MODULES = (
    "housing.report",
    "housing.serving.cli",
    "housing.deploy.cli",
    "housing.monitoring.cli",
    "housing.experiments.cli",
    "housing.infra.cli",
)

ParamsOpt = Annotated[Path, typer.Option("--params", help="Path to params.yaml.")]


def _params(path: Path) -> Params:
    return load_params(path)


def _echo_json(data: object) -> None:
    import json

    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def ingest(
    params: ParamsOpt = DEFAULT_PARAMS_PATH,
    data_home: Annotated[
        Path | None,
        typer.Option(help="scikit-learn data cache; default $SCIKIT_LEARN_DATA or ~/scikit_learn_data"),
    ] = None,
) -> None:
    """Materialise the raw California housing data set into data/raw (deterministic bytes)."""
    from housing.data import ingest as run

    result = run(_params(params).data, data_home=data_home)
    typer.echo(f"ingested {result.rows} rows -> {result.path} (sha256 {result.sha256[:12]})")


@app.command()
def validate(
    params: ParamsOpt = DEFAULT_PARAMS_PATH,
    report: Annotated[Path, typer.Option(help="Validation report (written only on success).")] = Path(
        "reports/validation.json"
    ),
) -> None:
    """Check schema, ranges, missing values, duplicates and outliers; fail naming column and rule."""
    from housing.validation import validate_file

    cfg = _params(params)
    result = validate_file(cfg.data.raw_path, cfg.validate_, cfg.data, report_path=report)
    typer.echo(f"validation passed: {result['rows']} rows, {len(result['checks'])} checks -> {report}")


@app.command()
def split(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Split the validated data into train/test (seeded) and draw the drift reference sample."""
    from housing.data import split as run

    cfg = _params(params)
    result = run(cfg.data, cfg.split, cfg.validate_)
    typer.echo(
        f"train {result.train_rows} rows ({result.production_rows} from the production window), "
        f"test {result.test_rows} rows, reference {result.reference_rows}"
    )


@app.command()
def train(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Fit the model pipeline (features + regressor) on the training split."""
    from housing.train import train_stage

    summary = train_stage(_params(params))
    _echo_json(summary)


@app.command()
def export(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Compile the fitted pipeline to ONNX, check parity against sklearn, write metadata."""
    from housing.export import export_stage

    metadata = export_stage(_params(params))
    typer.echo(
        f"exported {metadata.model_version}: parity max |diff| {metadata.parity_max_abs_diff:.2e}, "
        f"sha256 {metadata.onnx_sha256[:12]}"
    )


@app.command()
def evaluate(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Score the ONNX artifact on the test split: metrics, slices, cost, plots, gates."""
    from housing.evaluate import evaluate_stage

    metrics = evaluate_stage(_params(params))
    _echo_json(metrics["test"])


@app.command()
def drift(
    params: ParamsOpt = DEFAULT_PARAMS_PATH,
    current: Annotated[
        Path | None, typer.Option(help="Production window (CSV or inference-log JSONL); default from params")
    ] = None,
) -> None:
    """Compare the reference sample with the production window (K-S / chi² / PSI + Evidently)."""
    from housing.drift import drift_stage

    result = drift_stage(_params(params), current_path=current)
    typer.echo(
        f"drift score {result['drift_score']:.3f} (threshold {result['threshold']}); "
        f"drifted: {', '.join(result['drifted_features']) or 'none'}; "
        f"retrain_recommended={str(result['retrain_recommended']).lower()}"
    )


@app.command()
def register(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Log the run to MLflow and register the model version as @challenger."""
    from housing.registry import register_stage

    _echo_json(register_stage(_params(params)))


@app.command()
def promote(
    params: ParamsOpt = DEFAULT_PARAMS_PATH,
    version: Annotated[str | None, typer.Option(help="Version to promote; default @challenger")] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(help="Promote the registered version of this artifact (its metadata's model_version)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Skip the at-least-as-good rule.")] = False,
    register_missing: Annotated[
        bool,
        typer.Option(
            help="With --model-dir: register the artifact first if this registry does not have it yet "
            "(CD promotes what it deployed, wherever the pipeline ran)."
        ),
    ] = False,
) -> None:
    """Move @champion to the challenger when it is at least as good on the same holdout."""
    from housing.registry import promote as run

    cfg = _params(params).register_
    if model_dir is not None:
        if version is not None:
            raise typer.BadParameter("give --version or --model-dir, not both")
        from housing.registry import register_model, version_by_model_version

        if register_missing:
            # Idempotent (reuses a registered artifact); @challenger stays where it is.
            version = register_model(model_dir, cfg, alias=None)["version"]
        else:
            from housing.artifact import read_metadata

            version = version_by_model_version(cfg, read_metadata(model_dir).model_version)
    _echo_json(run(cfg, version=version, force=force))


@app.command("fetch-model")
def fetch_model(
    alias: Annotated[str, typer.Option(help="Registry alias: champion or challenger.")] = "champion",
    out: Annotated[
        Path, typer.Option(help="Model directory to (re)write: model.onnx + metadata.json.")
    ] = Path("models-registry"),
    params: ParamsOpt = DEFAULT_PARAMS_PATH,
) -> None:
    """Download the model an MLflow alias points at into a directory `housing serve --model-dir` loads."""
    from housing.registry import fetch_model as run

    _echo_json(run(_params(params).register_, alias, out))


@app.command()
def rollback(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Move @champion back to its previous holder (alias history is kept as version tags)."""
    from housing.registry import rollback as run

    _echo_json(run(_params(params).register_))


@simulate_app.command("window")
def simulate_window(
    scenario: Annotated[str, typer.Option(help="Drift scenario name (see --list).")] = "none",
    rows: Annotated[int, typer.Option(min=1)] = 5000,
    seed: Annotated[int, typer.Option()] = 7,
    out: Annotated[Path | None, typer.Option(help="Output CSV; default the params production window")] = None,
    from_log: Annotated[
        Path | None, typer.Option(help="Build the window from an inference log (file or directory).")
    ] = None,
    list_scenarios: Annotated[bool, typer.Option("--list", help="List scenarios and exit.")] = False,
    params: ParamsOpt = DEFAULT_PARAMS_PATH,
) -> None:
    """Write a production window: a seeded drift scenario, or the rows of an inference log."""
    from housing import simulate

    if list_scenarios:
        for name, description in simulate.SCENARIOS_HELP.items():
            typer.echo(f"{name:16s} {description}")
        return
    cfg = _params(params)
    target = out or cfg.data.production_window_path
    if from_log is not None:
        n = simulate.window_from_log(from_log, target, cfg.data)
        typer.echo(f"wrote {n} logged rows -> {target}")
        return
    n = simulate.write_window(cfg.data, scenario=scenario, rows=rows, seed=seed, out=target)
    typer.echo(f"wrote {n} rows of scenario {scenario!r} -> {target}")


for _module in _COMMAND_MODULES:
    importlib.import_module(_module).register(app, simulate_app)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("HOUSING_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        app()
    except HousingError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
