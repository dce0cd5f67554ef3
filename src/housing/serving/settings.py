"""Model server settings: one strict model read from flags and ``HOUSING_*`` env vars, and the model lookup.

Every bound lives here once, as a pydantic constraint: ``housing serve``'s options take their defaults and
help from these fields (:mod:`housing.serving.cli`), and an invalid value, from a flag or from the
environment, is a one-line :class:`~housing.errors.ConfigError` naming the setting, its flag and env var, and
the rule.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from housing.artifact import METADATA_FILE
from housing.errors import ConfigError
from housing.paths import INFERENCE_LOG_DIR, MODELS
from housing.strict import OneLineErrors, StrictSettings, flag_and_env

KSERVE_MODEL_DIR = Path("/mnt/models")  # where KServe's storage initializer puts the storageUri's files
BAKED_MODEL_DIR_ENV = "HOUSING_BAKED_MODEL_DIR"  # set by the image to the model copied in at build time
MAX_SALT_CHARS = 128


class AbMode(StrEnum):
    """Champion/challenger routing (docs/serving.md, A/B routing)."""

    OFF = "off"  # the champion only; no routing work per request
    SPLIT = "split"  # a share of routing keys is answered by the challenger
    SHADOW = "shadow"  # the champion answers; the challenger scores the same rows afterwards


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


def resolve_model_dir(explicit: Path | None) -> Path:
    """Pick the model directory; the first that applies wins.

    1. ``--model-dir`` / ``HOUSING_MODEL_DIR`` (an explicit choice);
    2. ``/mnt/models`` when it holds a model (KServe mounted a ``storageUri``);
    3. ``HOUSING_BAKED_MODEL_DIR`` (the image sets it to the model baked in at build time);
    4. ``./models`` (the pipeline's output in a dev checkout).
    """
    if explicit is not None:
        return explicit
    try:
        mounted = (KSERVE_MODEL_DIR / METADATA_FILE).is_file()
    except PermissionError:
        raise ConfigError(
            f"{KSERVE_MODEL_DIR}: a model directory is mounted but this user (uid {os.getuid()}) may not "
            "read it; make it readable (files 0644, directories 0755) or pass --model-dir"
        ) from None
    if mounted:
        return KSERVE_MODEL_DIR
    baked = os.environ.get(BAKED_MODEL_DIR_ENV)
    if baked:
        return Path(baked)
    return MODELS


class ServeSettings(OneLineErrors, StrictSettings):
    """What ``housing serve`` runs with. Field ``x`` is flag ``--x`` (dashes) and env var ``HOUSING_X``."""

    setting_name: ClassVar[str] = "serve"

    model_dir: Path | None = None  # None: resolve_model_dir's precedence, applied when the app is built
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    model_name: str | None = Field(None, min_length=1, pattern=r"^[^/]+$")  # None: the metadata's name
    inference_log_dir: Path | None = INFERENCE_LOG_DIR  # None (or no_inference_log): no inference log
    no_inference_log: bool = False
    log_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    log_rotate_seconds: float = Field(3600.0, gt=0)
    log_max_files: int = Field(100, ge=0)  # 0 keeps every file
    log_queue_rows: int = Field(100_000, ge=1)
    log_flush_interval: float = Field(0.2, gt=0, le=60)
    max_batch: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1024 * 1024, ge=64)
    # Share of each feature's [min, max] width accepted beyond the bounds.
    range_tolerance: float = Field(0.0, ge=0, le=10)
    feedback_window: int = Field(1000, ge=2)  # fed-back predictions in the rolling MAE/R²/PPE window
    # model_ppe_score: share within ±this of the actual. 0.25 keeps a healthy model (holdout 0.84) well above
    # the ModelAccuracyDropped alert's 75%; PPE10 (0.49 on the holdout) is exported too, for dashboards.
    ppe_tolerance: float = Field(0.25, gt=0, lt=1)
    feedback_capacity_rows: int = Field(100_000, ge=1)  # predictions remembered for feedback (rows)
    feedback_ttl_seconds: float = Field(3600.0, gt=0)  # for remembered predictions and feedback tokens
    # Secrets come from files (a mounted Kubernetes Secret), never from flag or env values.
    feedback_token_file: Path | None = None  # the bearer token feedback must carry; None: no feedback
    feedback_signing_key_file: Path | None = None  # signs feedback tokens; None: a key per process
    feedback_token_max_rows: int = Field(100, ge=0)  # larger responses get no X-Feedback-Token (0: none)
    fault_error_rate: float = Field(0.0, ge=0, le=1)
    fault_latency_ms: float = Field(0.0, ge=0, le=60_000)
    graceful_timeout: float = Field(20.0, ge=0)
    access_log: bool = False
    log_format: LogFormat = LogFormat.JSON
    log_level: LogLevel = LogLevel.INFO
    challenger_model_dir: Path | None = None
    ab_mode: AbMode = AbMode.OFF
    challenger_share: float = Field(0.5, ge=0, le=1)  # the lab's 50/50; production starts at 0.1
    # None: derived from the two model versions, so a new pair of models reshuffles the arms.
    ab_salt: str | None = Field(None, min_length=1, max_length=MAX_SALT_CHARS)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        """Any case, and logging's aliases WARN and FATAL, as logging itself accepts them."""
        if not isinstance(value, str):
            return value
        return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(value.upper(), value.upper())

    @field_validator("ab_salt")
    @classmethod
    def _printable_salt(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must be printable characters")
        return value

    @model_validator(mode="after")
    def _challenger_when_routing(self) -> ServeSettings:
        if self.ab_mode is not AbMode.OFF and self.challenger_model_dir is None:
            raise ValueError(
                f"ab_mode={self.ab_mode.value!r} needs a challenger model directory "
                f"({flag_and_env(ServeSettings, 'challenger_model_dir')})"
            )
        return self

    @property
    def log_dir(self) -> Path | None:
        """Where the inference log goes; None when it is off."""
        return None if self.no_inference_log else self.inference_log_dir
