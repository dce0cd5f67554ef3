"""Overlay rendering with an image reference: kustomize images fields, errors, k8s/ left untouched."""

import shutil
from pathlib import Path

import pytest
import yaml

from housing.deploy.render import RenderError, render_overlay, set_image, split_image

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("image", "fields"),
    [
        ("reg.io/team/housing:abc123", {"newName": "reg.io/team/housing", "newTag": "abc123"}),
        (f"reg.io/housing@{DIGEST}", {"newName": "reg.io/housing", "digest": DIGEST}),
        (
            f"reg.io:5000/housing:v1@{DIGEST}",
            {"newName": "reg.io:5000/housing", "newTag": "v1", "digest": DIGEST},
        ),
        ("reg.io:5000/housing", {"newName": "reg.io:5000/housing"}),
    ],
)
def test_split_image(image, fields):
    assert split_image(image) == fields


@pytest.mark.parametrize("image", ["housing:", "reg.io/housing@sha256:short", "@" + DIGEST])
def test_split_image_rejects_malformed_references(image):
    with pytest.raises(RenderError, match="image"):
        split_image(image)


def test_set_image_rewrites_only_the_model_entry(tmp_path):
    path = tmp_path / "kustomization.yaml"
    path.write_text(
        yaml.safe_dump(
            {"images": [{"name": "other", "newTag": "x"}, {"name": "housing-model", "newTag": "old"}]}
        )
    )
    set_image(path, f"reg.io/housing@{DIGEST}")
    images = yaml.safe_load(path.read_text())["images"]
    assert images == [
        {"name": "other", "newTag": "x"},
        {"name": "housing-model", "newName": "reg.io/housing", "digest": DIGEST},
    ]


def test_set_image_names_the_file_without_a_model_entry(tmp_path):
    path = tmp_path / "kustomization.yaml"
    path.write_text("resources: []\n")
    with pytest.raises(RenderError, match=r"kustomization.yaml: images: has no entry named 'housing-model'"):
        set_image(path, "reg.io/housing:v1")


@pytest.mark.skipif(not (shutil.which("kubectl") or shutil.which("kustomize")), reason="no kubectl/kustomize")
def test_render_overlay_uses_the_image_and_leaves_k8s_unchanged(tmp_path):
    k8s = Path("k8s")
    before = (k8s / "overlays/production/kustomization.yaml").read_text()
    out = render_overlay(k8s, "production", f"reg.io/housing@{DIGEST}", tmp_path)
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    assert isvc["spec"]["predictor"]["containers"][0]["image"] == f"reg.io/housing@{DIGEST}"
    assert (k8s / "overlays/production/kustomization.yaml").read_text() == before
    with pytest.raises(RenderError, match="overlays: production, staging"):
        render_overlay(k8s, "nope", "reg.io/housing:v1", tmp_path)
