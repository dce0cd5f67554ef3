"""CLI commands of this subpackage; ``housing.cli`` calls :func:`register`. Keep imports lazy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer, simulate: typer.Typer) -> None:  # noqa: ARG001
    """Add this subpackage's commands to the root app (and the ``simulate`` group)."""
    app.command("retrain-trigger")(retrain_trigger)
    app.command("drift-push")(drift_push)


def _read_secret(value: str | None, path: Path | None, what: str) -> str | None:
    from housing.monitoring.retrain_trigger import RetrainTriggerError

    if path is None:
        return value
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise RetrainTriggerError(f"{what} file {path}: {exc.strerror}") from exc


def retrain_trigger(
    host: Annotated[str, typer.Option(envvar="HOUSING_RETRAIN_HOST", help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="HOUSING_RETRAIN_PORT", help="Bind port.")] = 8080,
    repository: Annotated[
        str,
        typer.Option(envvar="HOUSING_GITHUB_REPOSITORY", help="GitHub repository owner/name to dispatch to."),
    ] = "OWNER/REPO",
    github_api_url: Annotated[
        str,
        typer.Option(envvar="HOUSING_GITHUB_API_URL", help="GitHub API base URL (GHES, or a test stand-in)."),
    ] = "https://api.github.com",
    event_type: Annotated[str, typer.Option(help="repository_dispatch event type.")] = "retrain",
    dedup_ttl: Annotated[
        float,
        typer.Option(
            envvar="HOUSING_RETRAIN_DEDUP_TTL", help="Seconds during which a group's repeats are ignored."
        ),
    ] = 6 * 3600.0,
    webhook_token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the webhook bearer token (default: env HOUSING_RETRAIN_WEBHOOK_TOKEN)."
        ),
    ] = None,
    github_token_file: Annotated[
        Path | None, typer.Option(help="File holding the GitHub token (default: env GITHUB_TOKEN).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(envvar="HOUSING_RETRAIN_DRY_RUN", help="Log the dispatch instead of sending it.")
    ] = False,
) -> None:
    """Receive Alertmanager webhooks; send GitHub repository_dispatch "retrain" for firing alert groups.

    Tokens come from the environment (HOUSING_RETRAIN_WEBHOOK_TOKEN, GITHUB_TOKEN) or files, never flags.
    """
    import logging
    import os
    import signal
    import threading

    from housing.monitoring.retrain_trigger import RetrainTrigger, TriggerSettings, make_server

    settings = TriggerSettings(
        webhook_token=_read_secret(
            os.environ.get("HOUSING_RETRAIN_WEBHOOK_TOKEN"), webhook_token_file, "webhook token"
        )
        or "",
        github_token=_read_secret(os.environ.get("GITHUB_TOKEN"), github_token_file, "GitHub token"),
        github_repository=repository,
        github_api_url=github_api_url,
        event_type=event_type,
        dedup_ttl_s=dedup_ttl,
        dry_run=dry_run,
    )
    server = make_server(RetrainTrigger(settings), host, port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    bound_host, bound_port = server.server_address[:2]
    logging.getLogger("housing.monitoring.retrain_trigger").info(
        "retrain trigger listening on http://%s:%s/alertmanager -> %s (event %r%s)",
        bound_host,
        bound_port,
        settings.dispatch_url,
        event_type,
        ", dry run" if dry_run else "",
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def drift_push(
    gateway_url: Annotated[
        str,
        typer.Option(
            "--pushgateway-url", envvar="HOUSING_PUSHGATEWAY_URL", help="Prometheus Pushgateway URL."
        ),
    ],
    drift_json: Annotated[Path, typer.Option(help="Drift stage result.")] = Path("reports/drift.json"),
    model: Annotated[
        str, typer.Option(help="Value of the `model` label (the served model name).")
    ] = "housing",
    namespace: Annotated[
        str, typer.Option(help="Value of the `namespace` label (where the model runs).")
    ] = "housing-production",
) -> None:
    """Push reports/drift.json as model_data_drift_* gauges (feeds the ModelDataDrift alert)."""
    from housing.monitoring.drift_export import push

    url = push(drift_json, gateway_url, model=model, namespace=namespace)
    typer.echo(f"pushed drift gauges -> {url}")
