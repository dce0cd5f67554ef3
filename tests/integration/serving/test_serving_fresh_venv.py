"""The serving image's recipe without Docker: install the package with base dependencies only into a fresh
virtualenv, then start it exactly as the Dockerfile's CMD does, with the Dockerfile's runtime ENV."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv

import pytest
from serving_support import ROOT, ROW, free_port, http, wait_ready

from housing.inference_log import read_records

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRAINING_STACK = ("scikit-learn", "pandas", "mlflow", "evidently", "skl2onnx", "dvc", "scipy", "kserve")


def dockerfile_runtime() -> tuple[dict[str, str], list[str], list[str]]:
    """The runtime stage's ENV, CMD and HEALTHCHECK command."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stage = text.split(" AS runtime")[-1].split("\nFROM ")[0]  # up to the next stage (the train target's)
    env: dict[str, str] = {}
    for line in stage.splitlines():
        line = line.strip()
        if line.startswith("ENV "):
            for key, value in re.findall(r"(\w+)=(\S+)", line[4:]):
                env[key] = value
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", stage, re.M).group(1))
    health = json.loads(re.search(r"HEALTHCHECK .*? CMD (\[.*\])$", stage, re.M).group(1))
    return env, cmd, health


def test_base_install_serves_like_the_image(model_dir, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    # The image's build context (.dockerignore allows pyproject.toml, README.md, src/): building from a copy
    # also keeps pip's build/ directory out of the checkout.
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, context / name)
    shutil.copytree(ROOT / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(context)],
        capture_output=True,
        text=True,
        env=clean,
        timeout=900,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        env=clean,
        check=True,
    ).stdout
    names = {p["name"].lower() for p in json.loads(installed)}
    assert "housing-mlops" in names
    assert "onnxruntime" in names
    assert not names & set(TRAINING_STACK), names & set(TRAINING_STACK)

    image_env, cmd, healthcheck = dockerfile_runtime()
    assert cmd[:2] == ["housing", "serve"]
    port = free_port()
    log_dir = tmp_path / "var-log-housing" / "inference"
    run_env = {
        **clean,
        **image_env,
        "PATH": f"{env_dir / 'bin'}:{clean.get('PATH', '/usr/bin:/bin')}",
        "HOUSING_HOST": "127.0.0.1",  # the image binds 0.0.0.0; tests stay on loopback
        "HOUSING_PORT": str(port),
        "HOUSING_BAKED_MODEL_DIR": str(model_dir),  # stands in for /opt/housing/models
        "HOUSING_INFERENCE_LOG_DIR": str(log_dir),
    }
    workdir = tmp_path / "workdir"  # the image's WORKDIR: no models/ here, so the baked dir must be used
    workdir.mkdir()
    stderr_path = tmp_path / "server.log"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, env=run_env, cwd=workdir)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, url, stderr_path)
        health = subprocess.run(
            healthcheck, env=run_env, cwd=workdir, capture_output=True, timeout=30, check=False
        )
        assert health.returncode == 0, health.stderr
        models = http("GET", f"{url}/v1/models")[2]["models"]
        status, _headers, body = http(
            "POST",
            f"{url}/v1/models/{models[0]}:predict",
            {"instances": [ROW]},
            {"X-Request-Id": "fresh-venv"},
        )
        assert status == 200
        assert len(body["predictions"]) == 1
        # The training stack is not importable in that environment at all.
        probe = subprocess.run(
            [str(python), "-c", "import sklearn"], capture_output=True, env=clean, check=False
        )
        assert probe.returncode != 0
    finally:
        proc.terminate()
        proc.wait(30)
    assert [r["request_id"] for r in read_records(log_dir, kind="prediction")] == ["fresh-venv"]
    assert sys.executable != str(python)
