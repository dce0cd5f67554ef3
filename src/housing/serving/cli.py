"""``housing serve``: a thin typer wrapper over :class:`~housing.serving.settings.ServeSettings`.

Options default to None and carry no limits: the command passes what was given to the settings model, which
adds ``HOUSING_*`` env vars and defaults and checks every bound (a flag wins over its env var). Help texts
show each field's default and bounds from the model, so nothing is written twice. ``housing.cli`` calls
:func:`register`; the server itself is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from housing.serving.settings import AbMode, LogFormat, LogLevel, ServeSettings
from housing.strict import given, settings_option


def _choices(kind: type) -> str:
    return " | ".join(member.value for member in kind)


def _option(field: str, text: str, *flags: str) -> Any:
    return settings_option(ServeSettings, field, text, *flags)


def register(app: typer.Typer, simulate: typer.Typer) -> None:  # noqa: ARG001
    """Add this subpackage's commands to the root app (and the ``simulate`` group)."""

    @app.command()
    def serve(
        model_dir: Annotated[
            Path | None,
            _option(
                "model_dir",
                "Model directory (model.onnx + metadata.json). Unset: /mnt/models when KServe mounted one, "
                "else $HOUSING_BAKED_MODEL_DIR, else ./models.",
            ),
        ] = None,
        host: Annotated[str | None, _option("host", "Bind address.")] = None,
        port: Annotated[int | None, _option("port", "Port.")] = None,
        model_name: Annotated[
            str | None, _option("model_name", "Name in URLs; unset: the metadata's model_name.")
        ] = None,
        inference_log_dir: Annotated[
            Path | None, _option("inference_log_dir", "Where rotated JSONL inference logs go.")
        ] = None,
        no_inference_log: Annotated[
            bool | None, _option("no_inference_log", "Log nothing.", "--no-inference-log")
        ] = None,
        log_max_bytes: Annotated[
            int | None, _option("log_max_bytes", "Rotate a log file past this size.")
        ] = None,
        log_rotate_seconds: Annotated[
            float | None, _option("log_rotate_seconds", "Rotate a log file past this age.")
        ] = None,
        log_max_files: Annotated[
            int | None, _option("log_max_files", "Oldest files deleted beyond this; 0 keeps all.")
        ] = None,
        log_queue_rows: Annotated[
            int | None, _option("log_queue_rows", "Rows queued for the writer before new ones are dropped.")
        ] = None,
        log_flush_interval: Annotated[
            float | None, _option("log_flush_interval", "Seconds between the log writer's flushes.")
        ] = None,
        max_batch: Annotated[int | None, _option("max_batch", "Instances per request (more: 413).")] = None,
        max_body_bytes: Annotated[
            int | None, _option("max_body_bytes", "Request body size (more: 413).")
        ] = None,
        range_tolerance: Annotated[
            float | None,
            _option("range_tolerance", "Accept values this share of a feature's range width past its bounds"),
        ] = None,
        feedback_window: Annotated[
            int | None, _option("feedback_window", "Fed-back predictions in the rolling MAE/R²/PPE window.")
        ] = None,
        ppe_tolerance: Annotated[
            float | None,
            _option("ppe_tolerance", "model_ppe_score: share of fed-back predictions within this error."),
        ] = None,
        feedback_capacity_rows: Annotated[
            int | None, _option("feedback_capacity_rows", "Predicted rows remembered for feedback.")
        ] = None,
        feedback_ttl_seconds: Annotated[
            float | None, _option("feedback_ttl_seconds", "How long a prediction can receive feedback.")
        ] = None,
        feedback_token_file: Annotated[
            Path | None,
            _option(
                "feedback_token_file",
                "File holding the bearer token POST /v1/feedback must carry; unset: no feedback accepted.",
            ),
        ] = None,
        feedback_signing_key_file: Annotated[
            Path | None,
            _option(
                "feedback_signing_key_file",
                "File of the key that signs X-Feedback-Token (shared by replicas); unset: one per process.",
            ),
        ] = None,
        feedback_token_max_rows: Annotated[
            int | None,
            _option("feedback_token_max_rows", "Responses with more rows get no X-Feedback-Token (0: none)."),
        ] = None,
        fault_error_rate: Annotated[
            float | None,
            _option(
                "fault_error_rate", "Chaos/testing only: share of predict requests answered 500 (injected)."
            ),
        ] = None,
        fault_latency_ms: Annotated[
            float | None, _option("fault_latency_ms", "Chaos/testing only: extra predict latency.")
        ] = None,
        graceful_timeout: Annotated[
            float | None, _option("graceful_timeout", "Seconds to finish in-flight requests on SIGTERM.")
        ] = None,
        access_log: Annotated[
            bool | None, _option("access_log", "Log every request.", "--access-log/--no-access-log")
        ] = None,
        log_format: Annotated[str | None, _option("log_format", _choices(LogFormat))] = None,
        log_level: Annotated[str | None, _option("log_level", _choices(LogLevel))] = None,
        challenger_model_dir: Annotated[
            Path | None,
            _option("challenger_model_dir", "A/B: the challenger's model directory (split or shadow mode)."),
        ] = None,
        ab_mode: Annotated[
            str | None,
            _option(
                "ab_mode",
                f"{_choices(AbMode)}. off: champion only; split: route a share of X-Routing-Key values to "
                "the challenger; shadow: the champion answers, the challenger scores the same rows.",
            ),
        ] = None,
        challenger_share: Annotated[
            float | None,
            _option("challenger_share", "Split mode: share of routing keys the challenger answers."),
        ] = None,
        ab_salt: Annotated[
            str | None,
            _option("ab_salt", "Routing hash salt, one per experiment; unset: '<champion>/<challenger>'."),
        ] = None,
    ) -> None:
        """Serve the model: KServe V1 + Open Inference Protocol V2, /metrics, feedback, inference log."""
        options = given(locals())  # the options set
        from housing.serving.server import run

        run(ServeSettings(**options))
