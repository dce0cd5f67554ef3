"""Render a kustomize overlay with a given image, leaving ``k8s/`` untouched.

CD deploys by digest: the image reference ends up in the overlay's ``images:`` entry for ``housing-model``
(what ``kustomize edit set image`` would write), in a copy of ``k8s/`` under the build directory, which
``kubectl kustomize`` (or ``kustomize build``) then renders to one manifest file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from housing.errors import HousingError

IMAGE_NAME = "housing-model"  # the placeholder name k8s/base uses for the model image
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class RenderError(HousingError):
    """The overlay or the image reference is unusable."""


def split_image(image: str) -> dict[str, str]:
    """``repo[:tag][@sha256:...]`` -> kustomize ``images:`` fields (newName, newTag, digest)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    repo, tag = name.rsplit(":", 1) if ":" in last else (name, "")
    if not repo or (":" in last and not tag):
        raise RenderError(f"image {image!r}: expected <repository>[:<tag>][@sha256:<64 hex>]")
    if digest and not _DIGEST.match(digest):
        raise RenderError(f"image {image!r}: digest must be sha256:<64 lowercase hex>")
    fields = {"newName": repo}
    if tag:
        fields["newTag"] = tag
    if digest:
        fields["digest"] = digest
    return fields


def set_image(kustomization: Path, image: str) -> None:
    """Point the ``housing-model`` entry of a kustomization's ``images:`` at ``image`` (in place)."""
    doc = yaml.safe_load(kustomization.read_text())
    entries = (doc or {}).get("images") or []
    entry = next((e for e in entries if e.get("name") == IMAGE_NAME), None)
    if entry is None:
        raise RenderError(f"{kustomization}: images: has no entry named {IMAGE_NAME!r}")
    entry.clear()
    entry.update(name=IMAGE_NAME, **split_image(image))
    kustomization.write_text(yaml.safe_dump(doc, sort_keys=False))


def _kustomize_command(directory: Path) -> list[str]:
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", str(directory)]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(directory)]
    raise RenderError("neither kubectl nor kustomize is on PATH: cannot render the overlay")


def render_overlay(k8s_dir: Path, overlay: str, image: str, out_dir: Path) -> Path:
    """Copy ``k8s_dir`` to ``out_dir/k8s``, set the image in ``overlays/<overlay>``, render to
    ``out_dir/<overlay>.yaml`` and return that path."""
    source = k8s_dir / "overlays" / overlay
    if not (source / "kustomization.yaml").is_file():
        raise RenderError(f"{source}: no kustomization.yaml (overlays: {_overlays(k8s_dir)})")
    copy = out_dir / "k8s"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(k8s_dir, copy)
    set_image(copy / "overlays" / overlay / "kustomization.yaml", image)
    # Fixed tool; the arguments are paths built here.
    proc = subprocess.run(  # nosec B603
        _kustomize_command(copy / "overlays" / overlay), capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RenderError(f"{source}: kustomize failed: {proc.stderr.strip()}")
    out = out_dir / f"{overlay}.yaml"
    out.write_text(proc.stdout)
    return out


def _overlays(k8s_dir: Path) -> str:
    names = sorted(p.name for p in (k8s_dir / "overlays").glob("*") if p.is_dir())
    return ", ".join(names) or "none"
