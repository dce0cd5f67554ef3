"""Model server settings (flags and ``HOUSING_*`` env vars end up here) and the model directory lookup."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from housing.artifact import METADATA_FILE
from housing.errors import ConfigError
from housing.paths import INFERENCE_LOG_DIR, MODELS

AB_MODES = ("off", "split", "shadow")
KSERVE_MODEL_DIR = Path("/mnt/models")  # where KServe's storage initializer puts the storageUri's files
BAKED_MODEL_DIR_ENV = "HOUSING_BAKED_MODEL_DIR"  # set by the image to the model copied in at build time


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


@dataclass(frozen=True)
class ServeSettings:
    model_dir: Path = MODELS
    host: str = "127.0.0.1"
    port: int = 8080
    model_name: str | None = None  # default: the metadata's model_name
    inference_log_dir: Path | None = INFERENCE_LOG_DIR  # None: no inference log
    log_max_bytes: int = 64 * 1024 * 1024
    log_rotate_seconds: float = 3600.0
    log_max_files: int = 100
    log_queue_rows: int = 100_000
    log_flush_interval: float = 0.2
    max_batch: int = 1000
    max_body_bytes: int = 1024 * 1024
    range_tolerance: float = 0.0  # share of each feature's [min, max] width accepted beyond the bounds
    feedback_window: int = 1000  # fed-back predictions in the rolling MAE/R2/PPE10 window
    # model_ppe_score: share within ±this of the actual. 0.25 keeps a healthy model (holdout 0.84) well above
    # the ModelAccuracyDropped alert's 75%; PPE10 (0.49 on the holdout) is exported too, for dashboards.
    ppe_tolerance: float = 0.25
    feedback_capacity_rows: int = 100_000  # predictions remembered for feedback (rows)
    feedback_ttl_seconds: float = 3600.0
    fault_error_rate: float = 0.0
    fault_latency_ms: float = 0.0
    graceful_timeout: float = 20.0
    access_log: bool = False
    log_format: str = "json"  # json | text
    log_level: str = "INFO"
    # A/B routing (docs/abtest.md). off: the champion only, no per-request routing work. split: a
    # challenger_share of routing keys (X-Routing-Key, hashed with ab_salt) is answered by the challenger.
    # shadow: the champion answers everything; the challenger scores the same rows after the response.
    challenger_model_dir: Path | None = None
    ab_mode: str = "off"  # off | split | shadow
    challenger_share: float = 0.5  # the lab's 50/50; production starts at 0.1
    ab_salt: str | None = None  # None: derived from the two model versions (a new pair reshuffles the arms)

    def __post_init__(self) -> None:
        checks = {
            "port": 0 <= self.port <= 65535,
            "max_batch": self.max_batch >= 1,
            "max_body_bytes": self.max_body_bytes >= 64,
            "range_tolerance": 0.0 <= self.range_tolerance <= 10.0,
            "feedback_window": self.feedback_window >= 2,
            "ppe_tolerance": 0.0 < self.ppe_tolerance < 1.0,
            "feedback_capacity_rows": self.feedback_capacity_rows >= 1,
            "feedback_ttl_seconds": self.feedback_ttl_seconds > 0,
            "fault_error_rate": 0.0 <= self.fault_error_rate <= 1.0,
            "fault_latency_ms": 0.0 <= self.fault_latency_ms <= 60_000,
            "log_max_bytes": self.log_max_bytes >= 1024,
            "log_rotate_seconds": self.log_rotate_seconds > 0,
            "log_queue_rows": self.log_queue_rows >= 1,
            "log_flush_interval": self.log_flush_interval > 0,
            "graceful_timeout": self.graceful_timeout >= 0,
            "log_format": self.log_format in ("json", "text"),
            "challenger_share": 0.0 <= self.challenger_share <= 1.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"serve setting {name}={getattr(self, name)!r} is out of range")
        if self.ab_mode not in AB_MODES:
            raise ConfigError(f"serve setting ab_mode={self.ab_mode!r}: must be one of {', '.join(AB_MODES)}")
        if self.ab_mode != "off" and self.challenger_model_dir is None:
            raise ConfigError(
                f"serve setting ab_mode={self.ab_mode!r} needs a challenger model directory "
                "(--challenger-model-dir / HOUSING_CHALLENGER_MODEL_DIR)"
            )
        if self.ab_salt is not None and not (0 < len(self.ab_salt) <= 128 and self.ab_salt.isprintable()):
            raise ConfigError("serve setting ab_salt: must be 1-128 printable characters")
