"""Helpers for tests/k8s: paths, external tools (skipped loudly when missing), kustomize renders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
MONITORING = K8S / "monitoring"
OVERLAYS = ("staging", "production")
SCHEMAS = ROOT.parent / "shared" / "k8s-schemas"
INSTALL_HINT = "run `make k8s-tools` (apt-get install prometheus prometheus-alertmanager)"


def tool(name: str, hint: str = INSTALL_HINT) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"SKIPPED LOUDLY: `{name}` not found on PATH; {hint}")
    return path


def kustomize_command() -> list[str]:
    """`kustomize build` if installed, else `kubectl kustomize` (kustomize is built into kubectl)."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.skip(
        "SKIPPED LOUDLY: neither `kustomize` nor `kubectl` is installed: k8s overlays not rendered. "
        "Install kubectl (https://kubernetes.io/docs/tasks/tools/) or kustomize."
    )
    raise AssertionError  # pragma: no cover


def render(directory: Path) -> list[dict]:
    proc = subprocess.run([*kustomize_command(), str(directory)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kustomize failed for {directory}:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]
