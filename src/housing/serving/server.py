"""Build the serving app from settings and run it under uvicorn (uvloop + httptools), with JSON logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from housing.errors import DataError, HousingError
from housing.inference_log import InferenceLogWriter
from housing.serving.app import ServingApp
from housing.serving.core import ServingCore
from housing.serving.feedback_auth import BearerCheck, read_secret_file
from housing.serving.metrics import ServingMetrics
from housing.serving.model import ModelHandle, load_handle
from housing.serving.router import Router
from housing.serving.settings import AbMode, LogFormat, ServeSettings, resolve_model_dir
from housing.variants import Variant

log = logging.getLogger("housing.serving")

# Attributes every LogRecord has; anything else was passed with extra= and goes into the JSON line
# (uvicorn's color_message duplicates the message with terminal escapes).
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(fmt: str = LogFormat.JSON, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def build_app(settings: ServeSettings, *, metrics: ServingMetrics | None = None) -> ServingApp:
    """Load and verify the model, wire metrics and the inference log. Raises on a bad/tampered model."""
    metrics = metrics or ServingMetrics()

    def load(model_dir: Path, variant: Variant, name: str | None) -> ModelHandle:
        return load_handle(
            model_dir,
            metrics=metrics,
            variant=variant,
            name=name,
            tolerance=settings.range_tolerance,
            max_batch=settings.max_batch,
            feedback_window=settings.feedback_window,
            ppe_tolerance=settings.ppe_tolerance,
        )

    champion = load(resolve_model_dir(settings.model_dir), Variant.CHAMPION, settings.model_name)
    challenger = None
    if settings.ab_mode is not AbMode.OFF:  # off: a configured challenger directory is not even loaded
        assert settings.challenger_model_dir is not None  # ServeSettings checks it
        # One served name: the variant is a routing decision, not another model.
        challenger = load(settings.challenger_model_dir, Variant.CHALLENGER, champion.name)
        check_compatible(champion, challenger)
    router = Router(
        champion,
        challenger,
        mode=settings.ab_mode,
        challenger_share=settings.challenger_share,
        salt=settings.ab_salt,
    )
    writer = None
    if settings.log_dir is not None:
        writer = InferenceLogWriter(
            settings.log_dir,
            max_bytes=settings.log_max_bytes,
            rotate_seconds=settings.log_rotate_seconds,
            max_files=settings.log_max_files,
            max_pending_rows=settings.log_queue_rows,
            flush_interval=settings.log_flush_interval,
        )
        metrics.watch_inference_log(writer)
    bearer, signing_key = load_feedback_secrets(settings)
    return ServingApp(ServingCore(router, settings, metrics, writer, bearer=bearer, signing_key=signing_key))


def load_feedback_secrets(settings: ServeSettings) -> tuple[BearerCheck, bytes | None]:
    """The feedback bearer check and the token signing key, from their files (ConfigError when unreadable)."""
    token = None
    if settings.feedback_token_file is not None:
        token = read_secret_file(settings.feedback_token_file, "feedback token")
    else:
        log.warning("no --feedback-token-file: POST /v1/feedback refuses everything (401)")
    key = None
    if settings.feedback_signing_key_file is not None:
        key = read_secret_file(settings.feedback_signing_key_file, "feedback signing key").encode()
    elif token is not None:
        log.warning(
            "no --feedback-signing-key-file: feedback tokens are signed with a key of this process only; "
            "with several replicas, give them all the same key"
        )
    return BearerCheck(token), key


def check_compatible(champion: ModelHandle, challenger: ModelHandle) -> None:
    """Both variants must take the same input: one request is validated once and may be scored by both."""
    ours, theirs = champion.metadata.features, challenger.metadata.features
    if ours == theirs:
        return
    if [f.name for f in ours] != [f.name for f in theirs]:
        problem = f"features {[f.name for f in theirs]} differ from the champion's {[f.name for f in ours]}"
    else:
        a, b = next((a, b) for a, b in zip(ours, theirs, strict=True) if a != b)
        problem = f"valid range of {b.name} [{b.min}, {b.max}] differs from the champion's [{a.min}, {a.max}]"
    raise DataError(
        f"{challenger.model_dir}: challenger {problem} ({champion.model_dir}); both variants must take the "
        "same input"
    )


def run(settings: ServeSettings) -> None:
    """Serve until SIGTERM/SIGINT: then stop accepting, answer in-flight requests, flush the log."""
    import uvicorn

    configure_logging(settings.log_format, settings.log_level)
    settings = settings.model_copy(update={"model_dir": resolve_model_dir(settings.model_dir)})
    started = time.perf_counter()
    try:
        app = build_app(settings)
    except HousingError as exc:
        log.error("refusing to start: %s", exc, extra={"model_dir": str(settings.model_dir)})
        raise
    routing = settings.ab_mode is not AbMode.OFF
    log.info(
        "model server starting",
        extra={
            "host": settings.host,
            "port": settings.port,
            "model_dir": str(settings.model_dir),
            "inference_log_dir": str(settings.log_dir),
            "load_seconds": round(time.perf_counter() - started, 3),
            "fault_error_rate": settings.fault_error_rate,
            "fault_latency_ms": settings.fault_latency_ms,
            "ab_mode": settings.ab_mode.value,
            "challenger_model_dir": str(settings.challenger_model_dir) if routing else None,
        },
    )
    if not routing and settings.challenger_model_dir is not None:
        log.warning("a challenger model directory is set but --ab-mode is off: serving the champion only")
    if settings.fault_error_rate or settings.fault_latency_ms:
        log.warning("fault injection is ON (testing only)")
    http: type[asyncio.Protocol] | str = "auto"  # uvicorn's choice, unless httptools is there:
    with contextlib.suppress(ImportError):  # (uvicorn[standard]) then one write per response
        from housing.serving.transport import OneWriteHttpToolsProtocol

        http = OneWriteHttpToolsProtocol
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="auto",  # uvloop when installed
        http=http,
        ws="none",
        lifespan="on",
        log_config=None,
        access_log=settings.access_log,
        # X-Forwarded-For only matters to the access log's client address; without it, one ASGI layer less.
        proxy_headers=settings.access_log,
        server_header=False,
        timeout_graceful_shutdown=settings.graceful_timeout,
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run()
