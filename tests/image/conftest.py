"""Fixtures for the image checks: the image `make image-check` built, one working container of it, servers."""

from __future__ import annotations

import os

import pytest
from image_support import BUILDAH_ENV, IMAGE_ENV, REPO_MODELS, Buildah, Container, ImageServer

from housing.artifact import ModelMetadata, read_metadata
from integration.serving.serving_support import Server, start_server


@pytest.fixture(scope="session")
def buildah() -> Buildah:
    if not os.environ.get(IMAGE_ENV) or not os.environ.get(BUILDAH_ENV):
        pytest.skip(
            f"no image to check: `make image-check` builds one and sets {IMAGE_ENV} and {BUILDAH_ENV}"
        )
    return Buildah.from_env()


@pytest.fixture(scope="session")
def image(buildah) -> str:
    name = os.environ[IMAGE_ENV]
    buildah("inspect", "--type", "image", name)  # fails the tests (not skips) when the named image is missing
    return name


@pytest.fixture(scope="session")
def image_config(buildah, image) -> dict:
    return buildah.image_config(image)


@pytest.fixture(scope="session")
def container(buildah, image):
    """One working container for every run: its files are never written (each run sees them read-only)."""
    made = Container(buildah, image)
    yield made
    made.remove()


@pytest.fixture(scope="session")
def baked_metadata() -> ModelMetadata:
    return read_metadata(REPO_MODELS)


@pytest.fixture(scope="module")
def baked_server(container, tmp_path_factory):
    """The image's CMD serving its baked model, the way a pod without storageUri runs it."""
    server: ImageServer = container.serve(tmp_path_factory.mktemp("image-server"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def host_server(tmp_path_factory):
    """`housing serve` from the development install, on the same models/ the image baked in."""
    server: Server = start_server(REPO_MODELS, tmp_path_factory.mktemp("host-server"), "--no-inference-log")
    yield server
    server.stop()
