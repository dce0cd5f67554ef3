"""CLI commands of this subpackage; ``housing.cli`` calls :func:`register`. Keep imports lazy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from housing.strict import given, settings_option

if TYPE_CHECKING:
    from housing.config import AbTestParams

DEFAULT_PARAMS = Path("params.yaml")
DEFAULT_LOG = Path("logs/inference")
DEFAULT_VERDICT_JSON = Path("reports/abtest.json")
DEFAULT_VERDICT_MD = Path("reports/abtest.md")

abtest_app = typer.Typer(
    help="Champion/challenger A/B tests decided by statistics (docs/abtest.md).", no_args_is_help=True
)

ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml (its abtest: section, if any).")]


def register(app: typer.Typer, simulate: typer.Typer) -> None:
    """Add this subpackage's commands to the root app (and the ``simulate`` group)."""
    app.add_typer(abtest_app, name="abtest")
    simulate.command("traffic")(simulate_traffic)
    app.command("loop")(loop)


def _abtest_params(path: Path, **overrides: Any) -> AbTestParams:
    """The ``abtest:`` section of params.yaml (defaults while it has none), with flag overrides validated."""
    from pydantic import ValidationError

    from housing.config import AbTestParams, load_params
    from housing.errors import ConfigError

    base = AbTestParams()
    if path.exists() or path != DEFAULT_PARAMS:
        base = getattr(load_params(path), "abtest", None) or base
    updates = {k: v for k, v in overrides.items() if v is not None}
    if not updates:
        return base
    try:
        return AbTestParams.model_validate({**base.model_dump(), **updates})
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"abtest: {problems}") from None


@abtest_app.command("plan")
def plan(
    mde: Annotated[
        float | None, typer.Option(help="Minimum detectable MAE effect (default from params).")
    ] = None,
    mde_kind: Annotated[
        str | None, typer.Option(help="relative (share of the baseline MAE) or absolute ($100k).")
    ] = None,
    baseline_mae: Annotated[float | None, typer.Option(help="Champion MAE, for a relative MDE.")] = None,
    sd: Annotated[float | None, typer.Option(help="Standard deviation of absolute errors.")] = None,
    alpha: Annotated[float | None, typer.Option(help="Two-sided false-positive rate.")] = None,
    power: Annotated[float | None, typer.Option(help="Probability of detecting the MDE.")] = None,
    from_log: Annotated[
        Path | None, typer.Option(help="Estimate baseline MAE and sd from the champion arm of a (pilot) log.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the plan JSON here (analyze --plan reads it).")
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Power analysis: print how many observations per arm the test needs ("need N per arm")."""
    from housing.experiments.abtest import estimate_planning_inputs, make_plan
    from housing.experiments.verdict import write_json

    cfg = _abtest_params(params)
    if from_log is not None:
        pilot = estimate_planning_inputs(from_log, cfg)
        typer.echo(
            f"estimated from {pilot.n} champion observations in {from_log}: MAE {pilot.mae:.4f}, "
            f"sd of absolute errors {pilot.sd:.4f}"
        )
        baseline_mae = pilot.mae if baseline_mae is None else baseline_mae
        sd = pilot.sd if sd is None else sd
    result = make_plan(
        cfg, mde=mde, mde_kind=mde_kind, baseline_mae=baseline_mae, sd=sd, alpha=alpha, power=power
    )
    typer.echo(result.describe())
    if out is not None:
        write_json(out, result)
        typer.echo(f"plan -> {out}")


@abtest_app.command("analyze")
def analyze(
    log: Annotated[Path, typer.Option(help="Inference log file or directory.")] = DEFAULT_LOG,
    out_json: Annotated[Path, typer.Option(help="Verdict JSON.")] = DEFAULT_VERDICT_JSON,
    out_md: Annotated[Path, typer.Option(help="Verdict markdown (PR comment / Slack).")] = DEFAULT_VERDICT_MD,
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="Plan JSON from `abtest plan --out` (default: from params).")
    ] = None,
    method: Annotated[str | None, typer.Option(help="fixed_horizon or msprt (default from params).")] = None,
    design: Annotated[
        str | None, typer.Option(help="auto, paired or unpaired (default from params).")
    ] = None,
    print_markdown: Annotated[bool, typer.Option("--print", help="Also print the markdown.")] = False,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Join predictions with feedback, compare the variants, write the verdict (JSON + markdown)."""
    from housing.experiments.abtest import analyze_log, make_plan
    from housing.experiments.abtest_report import render_markdown, write_verdict
    from housing.experiments.verdict import read_plan

    cfg = _abtest_params(params, method=method, design=design)
    chosen = read_plan(plan_file) if plan_file is not None else make_plan(cfg)
    typer.echo(chosen.describe())  # before any result: the horizon is fixed up front
    result = analyze_log(log, cfg, chosen)
    write_verdict(result, out_json, out_md)
    typer.echo(f"verdict: {result.verdict.value}: {result.reason}")
    typer.echo(f"-> {out_json}, {out_md}")
    if print_markdown:
        typer.echo(render_markdown(result))


@abtest_app.command("promote")
def promote(
    verdict: Annotated[Path, typer.Option(help="Verdict JSON from `abtest analyze`.")] = DEFAULT_VERDICT_JSON,
    overlay: Annotated[Path, typer.Option(help="Kustomize overlay to roll out.")] = Path(
        "k8s/overlays/production"
    ),
    image: Annotated[
        str | None, typer.Option(help="Image to roll out (default: overlay repository:<challenger version>).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Check the verdict and print the change; leave MLflow.")
    ] = False,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Apply a challenger_wins verdict: MLflow @champion -> the tested challenger; print the k8s change."""
    from housing.config import RegisterParams, load_params
    from housing.experiments.promotion import promote_verdict
    from housing.variants import Variant

    register_params = load_params(params).register_ if params.exists() else RegisterParams()
    result = promote_verdict(verdict, register_params, overlay=overlay, image=image, dry_run=dry_run)
    if result.registry is None:
        typer.echo(
            f"dry run: {result.verdict.value} for model version {result.model_version}; MLflow unchanged"
        )
    elif result.registry.get("promoted"):
        typer.echo(
            f"@{Variant.CHAMPION} -> version {result.registry['champion']} ({result.model_version}); "
            f"previous champion {result.registry.get('previous')}"
        )
    else:
        typer.echo(f"not promoted: {result.registry.get('reason')}")
    typer.echo(result.rollout)


def _traffic(field: str, text: str) -> Any:
    from housing.experiments.traffic import TrafficConfig

    return settings_option(TrafficConfig, field, text)


def simulate_traffic(
    url: Annotated[str | None, _traffic("url", "Model server base URL.")] = None,
    model: Annotated[str | None, _traffic("model", "Model name; unset: the server's first.")] = None,
    csv: Annotated[Path, typer.Option(help="Houses to replay (raw columns; target for feedback).")] = Path(
        "artifacts/test.csv"
    ),
    scenario: Annotated[str, typer.Option(help="Drift scenario (housing simulate window --list).")] = "none",
    houses: Annotated[
        int | None, typer.Option(help="Houses to draw (default: one per request, at most the CSV's rows).")
    ] = None,
    rate: Annotated[float | None, _traffic("rate", "Requests started per second, at most.")] = None,
    requests: Annotated[int | None, _traffic("requests", "Requests to send, at most.")] = None,
    duration: Annotated[float | None, _traffic("duration", "Seconds of traffic, at most.")] = None,
    concurrency: Annotated[int | None, _traffic("concurrency", "Requests in flight, at most.")] = None,
    feedback_share: Annotated[
        float | None, _traffic("feedback_share", "Share of requests that get ground truth.")
    ] = None,
    feedback_delay: Annotated[
        float | None, _traffic("feedback_delay", "Seconds before the ground truth is posted.")
    ] = None,
    feedback_token_file: Annotated[
        Path | None,
        _traffic("feedback_token_file", "File of the server's feedback token (its --feedback-token-file)."),
    ] = None,
    seed: Annotated[
        int | None, _traffic("seed", "Seeds the houses, their order and the feedback draw.")
    ] = None,
    timeout: Annotated[float | None, _traffic("timeout", "Seconds per HTTP request.")] = None,
    out_json: Annotated[Path | None, typer.Option(help="Write the summary JSON here.")] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Replay held-out houses against a running server (X-Routing-Key: house id); post delayed feedback."""
    import asyncio

    from housing.config import DataParams, load_params
    from housing.experiments.traffic import TrafficConfig, format_summary, load_houses, run_traffic

    config = TrafficConfig(**given(locals(), TrafficConfig))
    data_params = load_params(params).data if params.exists() else DataParams()
    chosen = load_houses(
        csv, data_params, scenario=scenario, houses=houses, needed=config.requests, seed=config.seed
    )
    summary = asyncio.run(run_traffic(config, chosen))
    typer.echo(format_summary(summary))
    if out_json is not None:
        from housing.artifact import atomic_write_json

        atomic_write_json(out_json, summary.model_dump(mode="json"))
        typer.echo(f"summary -> {out_json}")


def _loop(field: str, text: str) -> Any:
    from housing.experiments.loop import LoopConfig

    return settings_option(LoopConfig, field, text)


def loop(
    workdir: Annotated[
        Path | None, _loop("workdir", "Everything the loop writes goes here (rebuilt on each run).")
    ] = None,
    scenario: Annotated[
        str | None, _loop("scenario", "The shift production sees (housing simulate window --list).")
    ] = None,
    production_share: Annotated[
        float | None, _loop("production_share", "Share of the data set held out as future production.")
    ] = None,
    drift_houses: Annotated[
        int | None, _loop("drift_houses", "Drifted requests: the retraining window.")
    ] = None,
    baseline_houses: Annotated[
        int | None, _loop("baseline_houses", "Un-shifted requests before the shift.")
    ] = None,
    ab_houses: Annotated[int | None, _loop("ab_houses", "A/B requests at most (one new house each).")] = None,
    rate: Annotated[float | None, _loop("rate", "Requests per second.")] = None,
    concurrency: Annotated[int | None, _loop("concurrency", "Requests in flight, at most.")] = None,
    feedback_share: Annotated[
        float | None, _loop("feedback_share", "Share of requests that get ground truth.")
    ] = None,
    feedback_delay: Annotated[
        float | None, _loop("feedback_delay", "Seconds before the ground truth arrives.")
    ] = None,
    challenger_share: Annotated[
        float | None, _loop("challenger_share", "A/B split: challenger's share of keys.")
    ] = None,
    mde: Annotated[
        float | None, _loop("mde", "A/B minimum detectable MAE effect, relative to the pilot MAE.")
    ] = None,
    max_iter: Annotated[int | None, _loop("max_iter", "Override train.hgb.max_iter (shorter runs).")] = None,
    seed: Annotated[int | None, _loop("seed", "Seeds the houses, their order and the feedback draw.")] = None,
    overlay: Annotated[Path | None, _loop("overlay", "Overlay named in the printed rollout change.")] = None,
    server_start_timeout: Annotated[
        float | None, _loop("server_start_timeout", "Seconds a model server may take to be ready.")
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """The closed loop, offline: champion -> drift -> retrain -> A/B split -> verdict -> promote."""
    from housing.config import load_params
    from housing.experiments.loop import LoopConfig, run_loop

    config = LoopConfig(**given(locals(), LoopConfig))
    run_loop(config, load_params(params), echo=typer.echo)
