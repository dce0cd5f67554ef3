"""The components' image (the Dockerfile's `train` target, built by `make kfp-image` with buildah): it runs as
a non-root user that KFP's launcher can work as, and the compiled pipeline runs in it, offline (nothing is
pip-installed at run time), to the same test metrics as `dvc repro`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kfp_support import COMMITTED_PACKAGE, ROOT

sys.path.insert(0, str(ROOT / "tests" / "image"))
from image_support import BUILDAH_ENV, IMAGE_ENV, IMAGE_UID, Buildah  # tests/image, on the path above

pytestmark = pytest.mark.image

LAUNCHER_DIRS = ("/gcs", "/minio", "/s3", "/oci")  # where KFP's launcher puts artifacts, by URI scheme


@pytest.fixture(scope="module")
def buildah() -> Buildah:
    if not os.environ.get(IMAGE_ENV) or not os.environ.get(BUILDAH_ENV):
        pytest.skip(f"no image to check: `make kfp-image` builds one and sets {IMAGE_ENV} and {BUILDAH_ENV}")
    return Buildah.from_env()


@pytest.fixture(scope="module")
def container(buildah: Buildah):
    name = buildah("from", "--pull=never", os.environ[IMAGE_ENV]).stdout.strip()
    yield name
    buildah("rm", name, check=False)


def _run(
    buildah: Buildah, container: str, *command: str, volumes: tuple[str, ...] = (), timeout: float = 120.0
):
    flags = [flag for volume in volumes for flag in ("-v", volume)]
    return subprocess.run(
        [*buildah.command, "run", "--isolation", "chroot", *flags, container, "--", *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_runs_as_its_user_with_the_launchers_directories(buildah: Buildah, container: str):
    config = buildah.image_config(os.environ[IMAGE_ENV])
    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    writable = " ".join(f"test -w {d} && echo {d};" for d in LAUNCHER_DIRS)
    done = _run(buildah, container, "sh", "-c", f"id -u; {writable}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(IMAGE_UID), *LAUNCHER_DIRS]


def test_compiled_pipeline_runs_in_the_image(buildah: Buildah, container: str, tmp_path: Path):
    if not (ROOT / "data" / "raw" / "california_housing.csv").exists():
        pytest.skip("data/ is missing: run `make data` first")
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, IMAGE_UID, IMAGE_UID)
    done = _run(
        buildah,
        container,
        "sh", "-c", "cd /out && exec housing kfp run --local --force"
        " --package /work/kfp/housing_pipeline.yaml"
        " --raw-data /work/data/raw/california_housing.csv"
        " --production-window /work/data/production/window.csv"
        " --mlflow-tracking-uri sqlite:////out/mlflow.db --pipeline-root /out/runs",
        volumes=(f"{ROOT / 'data'}:/work/data:ro", f"{COMMITTED_PACKAGE.parent}:/work/kfp:ro", f"{out}:/out"),
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    result = json.loads(done.stdout[done.stdout.rindex('{\n  "run_dir"') :])
    expected = json.loads((ROOT / "reports" / "metrics.json").read_text())
    for name, value in expected["test"].items():
        assert result["test_metrics"][name] == pytest.approx(value, abs=1e-6), name
    assert result["model_version"] == expected["model"]["version"]
    assert result["registered_version"] == "1"
    print(f"\npipeline in the train image: {result['seconds']} s, test metrics {result['test_metrics']}")
