"""CLI commands of this subpackage; ``housing.cli`` calls :func:`register`. Keep imports lazy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from housing.paths import INFERENCE_LOG_DIR


def register(app: typer.Typer, simulate: typer.Typer) -> None:  # noqa: ARG001
    """Add this subpackage's commands to the root app (and the ``simulate`` group)."""

    @app.command()
    def serve(
        model_dir: Annotated[
            Path | None,
            typer.Option(
                envvar="HOUSING_MODEL_DIR",
                help="Model directory (model.onnx + metadata.json). Default: /mnt/models when KServe mounted "
                "one, else $HOUSING_BAKED_MODEL_DIR, else ./models.",
            ),
        ] = None,
        host: Annotated[str, typer.Option(envvar="HOUSING_HOST", help="Bind address.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(envvar="HOUSING_PORT", min=0, max=65535)] = 8080,
        model_name: Annotated[
            str | None,
            typer.Option(
                envvar="HOUSING_MODEL_NAME", help="Name in URLs; default the metadata's model_name."
            ),
        ] = None,
        inference_log_dir: Annotated[
            Path, typer.Option(envvar="HOUSING_INFERENCE_LOG_DIR", help="Where rotated JSONL logs go.")
        ] = INFERENCE_LOG_DIR,
        no_inference_log: Annotated[
            bool, typer.Option("--no-inference-log", envvar="HOUSING_NO_INFERENCE_LOG", help="Log nothing.")
        ] = False,
        log_max_bytes: Annotated[int, typer.Option(envvar="HOUSING_LOG_MAX_BYTES", min=1024)] = 64
        * 1024
        * 1024,
        log_rotate_seconds: Annotated[
            float, typer.Option(envvar="HOUSING_LOG_ROTATE_SECONDS", min=1)
        ] = 3600.0,
        log_max_files: Annotated[
            int,
            typer.Option(
                envvar="HOUSING_LOG_MAX_FILES", min=0, help="Oldest files deleted beyond this; 0 keeps all."
            ),
        ] = 100,
        log_queue_rows: Annotated[
            int, typer.Option(envvar="HOUSING_LOG_QUEUE_ROWS", min=1, help="Rows queued before dropping.")
        ] = 100_000,
        max_batch: Annotated[int, typer.Option(envvar="HOUSING_MAX_BATCH", min=1)] = 1000,
        max_body_bytes: Annotated[int, typer.Option(envvar="HOUSING_MAX_BODY_BYTES", min=64)] = 1024 * 1024,
        range_tolerance: Annotated[
            float,
            typer.Option(
                envvar="HOUSING_RANGE_TOLERANCE",
                min=0.0,
                help="Accept values this share of a feature's valid range width beyond its bounds.",
            ),
        ] = 0.0,
        feedback_window: Annotated[int, typer.Option(envvar="HOUSING_FEEDBACK_WINDOW", min=2)] = 1000,
        ppe_tolerance: Annotated[
            float,
            typer.Option(
                envvar="HOUSING_PPE_TOLERANCE",
                min=0.0,
                max=1.0,
                help="model_ppe_score: share of fed-back predictions within this relative error.",
            ),
        ] = 0.25,
        feedback_ttl_seconds: Annotated[
            float, typer.Option(envvar="HOUSING_FEEDBACK_TTL_SECONDS", min=1)
        ] = 3600.0,
        fault_error_rate: Annotated[
            float,
            typer.Option(
                envvar="HOUSING_FAULT_ERROR_RATE",
                min=0.0,
                max=1.0,
                help="[chaos/testing] Share of predict requests answered 500 (reason 'injected').",
            ),
        ] = 0.0,
        fault_latency_ms: Annotated[
            float,
            typer.Option(
                envvar="HOUSING_FAULT_LATENCY_MS", min=0.0, help="[chaos/testing] Extra predict latency."
            ),
        ] = 0.0,
        graceful_timeout: Annotated[
            float, typer.Option(envvar="HOUSING_GRACEFUL_TIMEOUT", min=0, help="Seconds to drain on SIGTERM.")
        ] = 20.0,
        access_log: Annotated[
            bool, typer.Option(envvar="HOUSING_ACCESS_LOG", help="Log every request.")
        ] = False,
        log_format: Annotated[str, typer.Option(envvar="HOUSING_LOG_FORMAT", help="json | text")] = "json",
        log_level: Annotated[str, typer.Option(envvar="HOUSING_LOG_LEVEL")] = "INFO",
        challenger_model_dir: Annotated[
            Path | None,
            typer.Option(
                envvar="HOUSING_CHALLENGER_MODEL_DIR",
                help="A/B: the challenger's model directory (used when --ab-mode is split or shadow).",
            ),
        ] = None,
        ab_mode: Annotated[
            str,
            typer.Option(
                envvar="HOUSING_AB_MODE",
                help="off: champion only | split: route a share of X-Routing-Key values to the challenger | "
                "shadow: the champion answers, the challenger scores the same rows (logged shadow: true).",
            ),
        ] = "off",
        challenger_share: Annotated[
            float,
            typer.Option(
                envvar="HOUSING_CHALLENGER_SHARE",
                min=0.0,
                max=1.0,
                help="Split mode: share of routing keys the challenger answers (lab 0.5, production 0.1).",
            ),
        ] = 0.5,
        ab_salt: Annotated[
            str | None,
            typer.Option(
                envvar="HOUSING_AB_SALT",
                help="Routing hash salt, one per experiment; default '<champion>/<challenger>' versions.",
            ),
        ] = None,
    ) -> None:
        """Serve the model: KServe V1 + Open Inference Protocol V2, /metrics, feedback, inference log."""
        from housing.serving.server import run
        from housing.serving.settings import ServeSettings, resolve_model_dir

        run(
            ServeSettings(
                model_dir=resolve_model_dir(model_dir),
                host=host,
                port=port,
                model_name=model_name,
                inference_log_dir=None if no_inference_log else inference_log_dir,
                log_max_bytes=log_max_bytes,
                log_rotate_seconds=log_rotate_seconds,
                log_max_files=log_max_files,
                log_queue_rows=log_queue_rows,
                max_batch=max_batch,
                max_body_bytes=max_body_bytes,
                range_tolerance=range_tolerance,
                feedback_window=feedback_window,
                ppe_tolerance=ppe_tolerance,
                feedback_ttl_seconds=feedback_ttl_seconds,
                fault_error_rate=fault_error_rate,
                fault_latency_ms=fault_latency_ms,
                graceful_timeout=graceful_timeout,
                access_log=access_log,
                log_format=log_format,
                log_level=log_level,
                challenger_model_dir=challenger_model_dir,
                ab_mode=ab_mode,
                challenger_share=challenger_share,
                ab_salt=ab_salt,
            )
        )
