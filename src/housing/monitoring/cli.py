"""CLI commands of this subpackage; ``housing.cli`` calls :func:`register`. Keep imports lazy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from housing.strict import given, settings_option


def register(app: typer.Typer, simulate: typer.Typer) -> None:  # noqa: ARG001
    """Add this subpackage's commands to the root app (and the ``simulate`` group)."""
    app.command("retrain-trigger")(retrain_trigger)
    app.command("drift-push")(drift_push)


def _read_secret(path: Path | None, what: str) -> str | None:
    from housing.monitoring.retrain_trigger import RetrainTriggerError

    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise RetrainTriggerError(f"{what} file {path}: {exc.strerror}") from exc


def _setting(field: str, text: str, *flags: str) -> Any:
    from housing.monitoring.retrain_trigger import TriggerSettings

    return settings_option(TriggerSettings, field, text, *flags)


def retrain_trigger(
    host: Annotated[str | None, _setting("host", "Bind address.")] = None,
    port: Annotated[int | None, _setting("port", "Bind port (0: a free one).")] = None,
    github_repository: Annotated[
        str | None,
        _setting("github_repository", "GitHub repository owner/name to dispatch to.", "--repository"),
    ] = None,
    github_api_url: Annotated[
        str | None, _setting("github_api_url", "GitHub API base URL (GHES, or a test stand-in).")
    ] = None,
    event_type: Annotated[str | None, _setting("event_type", "repository_dispatch event type.")] = None,
    dedup_ttl: Annotated[
        float | None, _setting("dedup_ttl", "Seconds during which a group's repeats are ignored.")
    ] = None,
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
        bool | None, _setting("dry_run", "Log the dispatch instead of sending it.", "--dry-run/--no-dry-run")
    ] = None,
) -> None:
    """Receive Alertmanager webhooks; send GitHub repository_dispatch "retrain" for firing alert groups.

    Tokens come from the environment (HOUSING_RETRAIN_WEBHOOK_TOKEN, GITHUB_TOKEN) or files, never flags.
    """
    import logging
    import signal
    import threading

    from housing.monitoring.retrain_trigger import RetrainTrigger, TriggerSettings, make_server

    options = given(locals(), TriggerSettings)
    secrets = {
        "webhook_token": _read_secret(webhook_token_file, "webhook token"),
        "github_token": _read_secret(github_token_file, "GitHub token"),
    }
    settings = TriggerSettings(**options, **given(secrets))  # unset: the settings read the env vars
    server = make_server(RetrainTrigger(settings), settings.host, settings.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    bound_host, bound_port = server.server_address[:2]
    logging.getLogger("housing.monitoring.retrain_trigger").info(
        "retrain trigger listening on http://%s:%s/alertmanager -> %s (event %r%s)",
        bound_host,
        bound_port,
        settings.dispatch_url,
        settings.event_type,
        ", dry run" if settings.dry_run else "",
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
