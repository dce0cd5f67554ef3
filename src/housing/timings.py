"""Timings of the last local run (``reports/timings.json``): volatile facts kept out of DVC-tracked outputs.

How long a fit took or how fast the ONNX model answers depends on the machine and its load, not on the
inputs, so it may not go into a file ``dvc.lock`` hashes (a fresh clone would then "change" the pipeline).
This file is untracked (gitignored) and informational; benchmarks/ measure performance properly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from housing import paths
from housing.artifact import atomic_write_json


def read_timings(path: Path = paths.TIMINGS_JSON) -> dict[str, dict[str, Any]]:
    """The recorded timings by stage; empty when none were recorded (or the file is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {stage: values for stage, values in data.items() if isinstance(values, dict)}


def record_timings(stage: str, **values: float) -> None:
    """Replace ``stage``'s entry in the timings file, keeping the other stages' entries."""
    atomic_write_json(paths.TIMINGS_JSON, {**read_timings(), stage: values})
