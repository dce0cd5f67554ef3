"""CLI commands of this subpackage; ``housing.cli`` calls :func:`register`. Keep imports lazy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from housing.strict import given, settings_option


def register(app: typer.Typer, simulate: typer.Typer) -> None:  # noqa: ARG001
    """Add this subpackage's commands to the root app (and the ``simulate`` group)."""
    app.command("canary")(canary)
    app.command("render")(render)
    app.command("ci-passed")(ci_passed)


def ci_passed(
    sha: Annotated[str, typer.Option(help="The commit to deploy (full SHA).")],
    workflow: Annotated[str, typer.Option(help="The CI workflow file that must have succeeded.")] = "ci.yml",
    ref: Annotated[str | None, typer.Option(help="The run's git ref; must be refs/heads/main.")] = None,
) -> None:
    """Fail unless WORKFLOW succeeded for SHA (GITHUB_API_URL, GITHUB_REPOSITORY, GITHUB_TOKEN)."""
    from housing.deploy.ci_gate import GitHubContext, successful_run

    run = successful_run(GitHubContext.from_env(), sha, workflow, ref)
    typer.echo(f"{workflow} passed for {sha}: {run}")


def render(
    image: Annotated[str, typer.Option(help="Image: <repository>[:<tag>][@sha256:<digest>].")],
    overlay: Annotated[str, typer.Option(help="Overlay under k8s/overlays.")] = "staging",
    k8s_dir: Annotated[Path, typer.Option(help="The kustomize tree.")] = Path("k8s"),
    out_dir: Annotated[Path, typer.Option(help="Where the copy and <overlay>.yaml go.")] = Path(
        "build/deploy"
    ),
) -> None:
    """Render a k8s overlay with IMAGE into OUT_DIR/<overlay>.yaml (k8s/ itself is not changed)."""
    from housing.deploy.render import render_overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(f"rendered {render_overlay(k8s_dir, overlay, image, out_dir)} with image {image}")


def _plan(field: str, text: str) -> Any:
    from housing.deploy.canary import CanaryPlan

    return settings_option(CanaryPlan, field, text)


def _limit(field: str, text: str) -> Any:
    from housing.deploy.analysis import Thresholds

    return settings_option(Thresholds, field, text)


def canary(
    image: Annotated[
        str | None, typer.Option(help="Image to roll out; default: continue the canary already in the spec.")
    ] = None,
    name: Annotated[str, typer.Option(help="InferenceService name.")] = "housing",
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace.")] = "housing-production",
    steps: Annotated[
        str | None, _plan("steps", "Traffic percents, comma-separated, ending with 100 (= promote).")
    ] = None,
    prometheus_url: Annotated[
        str, typer.Option(envvar="PROMETHEUS_URL", help="Prometheus base URL (HTTP API).")
    ] = "http://localhost:9090",
    analysis_window: Annotated[
        float | None, _plan("analysis_window", "Seconds of analysis per step.")
    ] = None,
    interval: Annotated[float | None, _plan("interval", "Seconds between analysis polls.")] = None,
    rate_window: Annotated[
        str | None, _plan("rate_window", "PromQL range of rate()/increase() per poll.")
    ] = None,
    failure_limit: Annotated[int | None, _plan("failure_limit", "Failing polls that abort a step.")] = None,
    ready_timeout: Annotated[
        float | None, _plan("ready_timeout", "Seconds to wait for the canary to be ready.")
    ] = None,
    poll: Annotated[float | None, _plan("poll", "Seconds between readiness polls.")] = None,
    max_error_rate: Annotated[
        float | None, _limit("max_error_rate", "Absolute error-rate limit of the canary.")
    ] = None,
    error_rate_margin: Annotated[
        float | None, _limit("error_rate_margin", "Allowed error-rate increase over stable.")
    ] = None,
    max_p95_ms: Annotated[float | None, _limit("max_p95_ms", "Absolute p95 latency limit (ms).")] = None,
    latency_ratio: Annotated[
        float | None, _limit("latency_ratio", "Allowed p95 ratio canary/stable.")
    ] = None,
    max_mae: Annotated[
        float | None, _limit("max_mae", "Absolute MAE limit (only when feedback exists).")
    ] = None,
    mae_ratio: Annotated[float | None, _limit("mae_ratio", "Allowed MAE ratio canary/stable.")] = None,
    min_requests: Annotated[
        float | None, _limit("min_requests", "Canary requests per rate window needed to judge.")
    ] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="kubeconfig file (default: in-cluster or ~/.kube).")
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context.")] = None,
    slack_webhook_url: Annotated[
        str | None, typer.Option(envvar="SLACK_WEBHOOK_URL", help="Slack incoming webhook for the summary.")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the result as JSON here.")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print the patches that would be sent; change nothing.")
    ] = False,
    retry: Annotated[
        bool, typer.Option(help="Analyse a rolled-back canary (canaryTrafficPercent 0) again.")
    ] = False,
    abort: Annotated[bool, typer.Option(help="Roll back now (canaryTrafficPercent 0) and exit 1.")] = False,
) -> None:
    """Roll out a KServe canary step by step with Prometheus analysis; promote or roll back.

    Exit code 0: promoted, nothing to do, or dry run. 1: rolled back. 2: usage/cluster error.
    """
    import json

    from housing.deploy.analysis import Prometheus, Thresholds
    from housing.deploy.canary import CanaryController, CanaryPlan
    from housing.deploy.isvc import CanaryError
    from housing.deploy.kube import KubeInferenceService
    from housing.deploy.notify import notify_slack

    options = locals()
    plan = CanaryPlan(**given(options, CanaryPlan))  # before anything is sent: bad flags change nothing
    thresholds = Thresholds(**given(options, Thresholds))
    target = f"{namespace}/{name}"
    prometheus = Prometheus(prometheus_url)
    if not (dry_run or abort):
        prometheus.scalar("vector(1)")  # fail fast (exit 2, nothing patched) when Prometheus is unreachable
    controller = CanaryController(
        KubeInferenceService(
            name, namespace, kubeconfig=str(kubeconfig) if kubeconfig else None, context=context
        ),
        prometheus,
        target=target,
        namespace=namespace,
        plan=plan,
        thresholds=thresholds,
    )
    try:
        result = controller.abort() if abort else controller.run(image, dry_run=dry_run, retry=retry)
    except CanaryError as exc:
        if slack_webhook_url and not dry_run:
            notify_slack(
                slack_webhook_url, f"canary {target}: ERROR - {exc} (state left as is; re-run to resume)"
            )
        raise
    except KeyboardInterrupt:
        typer.echo(
            f"canary {target}: interrupted; the InferenceService is left as is. Re-run the same "
            "command to resume, or pass --abort to roll back.",
            err=True,
        )
        raise typer.Exit(130) from None
    summary = result.summary()
    typer.echo(summary)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result.as_dict(), indent=2, default=str))
    if slack_webhook_url and result.outcome in ("promoted", "rolled_back"):
        notify_slack(slack_webhook_url, summary)
    raise typer.Exit(result.exit_code)
