"""Fresh clones of this repository that run the pipeline: commands that must succeed, their environment.

Importable from any test directory: pytest puts ``tests/`` (the rootdir conftest's folder) on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_ok(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    """``cmd``'s stdout; a failure names the command, the folder and the ends of both outputs."""
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(cmd)} in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def clone_env(clone: Path, **extra: str) -> dict[str, str]:
    """The environment `make pipeline` gives a clone: this venv's dvc and python on PATH, the clone's own
    code, an MLflow sqlite store inside it, no analytics, one BLAS thread."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(clone / "src"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{clone}/mlflow.db",
        "DVC_NO_ANALYTICS": "1",
        "OMP_NUM_THREADS": "1",
        **extra,
    }
