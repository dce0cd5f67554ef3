"""CLI commands of this subpackage (`housing kfp ...`); ``housing.cli`` calls :func:`register`.

Keep imports lazy: kfp lives in its own extra."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from housing.config import DEFAULT_PARAMS_PATH
from housing.kfp.pipeline import DEFAULT_PACKAGE, IMAGE_PLACEHOLDER
from housing.kfp.submit import DEFAULT_EXPERIMENT

DEFAULT_PIPELINE_ROOT = Path("build/kfp/local")

kfp_app = typer.Typer(
    help="Kubeflow Pipelines: the stages as a KFP v2 pipeline (docs/kfp.md). Needs the kfp extra.",
    no_args_is_help=True,
)

PackageOpt = Annotated[Path, typer.Option("--package", help="Compiled pipeline (IR YAML).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-p",
        help="Override a params.yaml value for this run: KEY=VALUE, e.g. -p train.hgb.learning_rate=0.1.",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Retrain even when the drift stage does not recommend it (= dvc repro)."),
]


def register(app: typer.Typer, simulate: typer.Typer) -> None:  # noqa: ARG001
    """Add the `kfp` command group to the root app."""
    kfp_app.command("compile")(compile_command)
    kfp_app.command("run")(run_command)
    kfp_app.command("submit")(submit_command)
    app.add_typer(kfp_app, name="kfp")


def compile_command(
    params: Annotated[
        Path, typer.Option("--params", help="params.yaml: the section parameters' defaults.")
    ] = DEFAULT_PARAMS_PATH,
    image: Annotated[
        str,
        typer.Option(help="Component image: CD passes <registry>/<repository>@sha256:<digest> of `train`."),
    ] = IMAGE_PLACEHOLDER,
    output: Annotated[Path, typer.Option(help="Where to write the IR YAML.")] = DEFAULT_PACKAGE,
) -> None:
    """Compile the pipeline to KFP IR YAML (the same params and image give the same bytes)."""
    from housing.config import load_params
    from housing.kfp.package import require_kfp
    from housing.kfp.pipeline import compile_pipeline

    validated = load_params(params)  # a bad value fails naming its key, with or without kfp
    require_kfp()
    typer.echo(f"compiled -> {compile_pipeline(validated, output, image)} (image {image})")


def run_command(
    local: Annotated[
        bool, typer.Option("--local", help="Run on this machine with kfp.local (required).")
    ] = False,
    package: PackageOpt = DEFAULT_PACKAGE,
    raw_data: Annotated[
        Path | None, typer.Option(help="Raw data CSV [default: the package's data.raw_path]")
    ] = None,
    production_window: Annotated[
        Path | None,
        typer.Option(help="Production window [default: the package's data.production_window_path]"),
    ] = None,
    mlflow_tracking_uri: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_TRACKING_URI", help="Where register logs [default: sqlite:///$PWD/mlflow.db]"
        ),
    ] = None,
    force: ForceOpt = False,
    overrides: SetOpt = None,
    pipeline_root: Annotated[Path, typer.Option(help="Where the tasks' outputs go.")] = DEFAULT_PIPELINE_ROOT,
) -> None:
    """Run the compiled pipeline locally (kfp.local, one subprocess per task, this environment's Python)."""
    from housing.kfp.local import absolute_tracking_uri, run_local
    from housing.kfp.package import KfpError, read_package, run_arguments
    from housing.registry import DEFAULT_TRACKING_URI

    if not local:
        raise KfpError(
            "kfp run: only --local runs here; a cluster gets the pipeline with `housing kfp submit --host`"
        )
    spec = read_package(package)
    data = spec.sections["data"]
    arguments = run_arguments(
        spec,
        raw_data_uri=str((raw_data or Path(data["raw_path"])).resolve()),
        production_window_uri=str((production_window or Path(data["production_window_path"])).resolve()),
        mlflow_tracking_uri=absolute_tracking_uri(mlflow_tracking_uri or DEFAULT_TRACKING_URI),
        force=force,
        overrides=overrides or (),
    )
    result = run_local(package, arguments, pipeline_root)
    typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))


def submit_command(
    host: Annotated[
        str, typer.Option(envvar="KF_PIPELINES_ENDPOINT", help="KFP API endpoint, e.g. https://kfp.example")
    ],
    raw_data_uri: Annotated[
        str, typer.Option(help="Raw data in the cluster's object store (s3://, gs://, minio://)")
    ],
    production_window_uri: Annotated[
        str, typer.Option(help="The production window (its latest copy, for --recurring)")
    ],
    mlflow_tracking_uri: Annotated[
        str,
        typer.Option(
            envvar="MLFLOW_TRACKING_URI", help="The MLflow server register logs to (reachable from pods)"
        ),
    ],
    package: PackageOpt = DEFAULT_PACKAGE,
    force: ForceOpt = False,
    overrides: SetOpt = None,
    recurring: Annotated[
        bool,
        typer.Option("--recurring", help="Create (or replace) the weekly recurring run, retrain.yml's cron."),
    ] = False,
    run_name: Annotated[
        str, typer.Option(help="Display name of the run or recurring run.")
    ] = "housing-retrain",
    experiment: Annotated[str, typer.Option(help="KFP experiment.")] = DEFAULT_EXPERIMENT,
    namespace: Annotated[str | None, typer.Option(help="Profile namespace (multi-user Kubeflow).")] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="KFP_TOKEN", help="Bearer token for the API (e.g. a service account's)."),
    ] = None,
) -> None:
    """Upload the compiled pipeline to a KFP cluster and start a run (or the weekly recurring run)."""
    from housing.kfp.package import read_package, run_arguments
    from housing.kfp.submit import submit

    spec = read_package(package)
    arguments = run_arguments(
        spec,
        raw_data_uri=raw_data_uri,
        production_window_uri=production_window_uri,
        mlflow_tracking_uri=mlflow_tracking_uri,
        force=force,
        overrides=overrides or (),
    )
    result = submit(
        spec,
        arguments,
        host=host,
        run_name=run_name,
        experiment=experiment,
        recurring=recurring,
        namespace=namespace,
        token=token,
    )
    typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
