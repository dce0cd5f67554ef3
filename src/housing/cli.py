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
from housing.variants import Variant

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
    "housing.kfp.cli",
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
    from housing.ingest import ingest as run

    result = run(_params(params).data, data_home=data_home)
    typer.echo(f"ingested {result.rows} rows -> {result.path} (sha256 {result.sha256[:12]})")


# The pipeline's stages (dvc.yaml runs `python -m housing.stages.<name>`; these call the same `run`).


@app.command()
def validate(
    params: ParamsOpt = DEFAULT_PARAMS_PATH,
    report: Annotated[Path, typer.Option(help="Validation report (written only on success).")] = Path(
        "reports/validation.json"
    ),
) -> None:
    """Check schema, ranges, missing values, duplicates and outliers; fail naming column and rule."""
    from housing.stages import validate as stage

    typer.echo(stage.describe(stage.run(_params(params), report_path=report), report))


@app.command()
def split(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Split the validated data into train/test (seeded) and draw the drift reference sample."""
    from housing.stages import split as stage

    typer.echo(stage.describe(stage.run(_params(params))))


@app.command()
def train(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Fit the model pipeline (features + regressor) on the training split."""
    from housing.stages import train as stage

    typer.echo(stage.describe(stage.run(_params(params))))


@app.command()
def export(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Compile the fitted pipeline to ONNX, check parity against sklearn, write metadata."""
    from housing.stages import export as stage

    typer.echo(stage.describe(stage.run(_params(params))))


@app.command()
def evaluate(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Score the ONNX artifact on the test split: metrics, slices, cost, plots, gates."""
    from housing.stages import evaluate as stage

    typer.echo(stage.describe(stage.run(_params(params))))


@app.command()
def drift(
    params: ParamsOpt = DEFAULT_PARAMS_PATH,
    current: Annotated[
        Path | None, typer.Option(help="Production window (CSV or inference-log JSONL); default from params")
    ] = None,
) -> None:
    """Compare the reference sample with the production window (K-S / chi² / PSI + Evidently)."""
    from housing.stages import drift as stage

    typer.echo(stage.describe(stage.run(_params(params), current_path=current)))


@app.command()
def register(params: ParamsOpt = DEFAULT_PARAMS_PATH) -> None:
    """Log the run to MLflow and register the model version as @challenger."""
    from housing.stages import register as stage

    typer.echo(stage.describe(stage.run(_params(params))))


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
            version = register_model(model_dir, cfg, alias=None).version
        else:
            from housing.artifact import read_metadata

            version = version_by_model_version(cfg, read_metadata(model_dir).model_version)
    _echo_json(run(cfg, version=version, force=force))


@app.command("fetch-model")
def fetch_model(
    alias: Annotated[Variant, typer.Option(help="Registry alias.")] = Variant.CHAMPION,
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
    from housing.logwindow import window_from_log

    if list_scenarios:
        for name, description in simulate.SCENARIOS_HELP.items():
            typer.echo(f"{name:16s} {description}")
        return
    cfg = _params(params)
    target = out or cfg.data.production_window_path
    if from_log is not None:
        n = window_from_log(from_log, target, cfg.data)
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
