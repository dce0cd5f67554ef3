"""CD's image reuse, run for real: `make ecr-image-digest` / `make ecr-tag` with the AWS CLI against moto.

A re-run of CD for a commit (workflow_dispatch to staging, "re-run all jobs") must not push `IMAGE:<sha>`
again: ECR refuses an immutable tag a second time. The workflow asks for the tag's digest first and builds
only when there is none; `latest` is re-pointed by manifest, and a second `tag-latest` is a no-op.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from cfn_support import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPOSITORY = "housing-mlops"
SHA = "0123456789abcdef0123456789abcdef01234567"
# A single-platform image manifest as buildx pushes it (the content is never pulled here).
MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 7023,
        "digest": "sha256:" + "b" * 64,
    },
    "layers": [
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 32654,
            "digest": "sha256:" + "c" * 64,
        }
    ],
}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _make(env: dict[str, str], target: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return _run(env, "make", "--no-print-directory", target, *(f"{k}={v}" for k, v in variables.items()))


def _aws(env: dict[str, str], *args: str) -> Any:
    result = _run(env, "aws", *args, "--output", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def pushed(moto_env) -> tuple[dict[str, str], str]:
    """A repository holding one image tagged with the commit sha; returns (env, its digest)."""
    _aws(moto_env, "ecr", "create-repository", "--repository-name", REPOSITORY)
    image = _aws(
        moto_env,
        "ecr",
        "put-image",
        "--repository-name",
        REPOSITORY,
        "--image-tag",
        SHA,
        "--image-manifest",
        json.dumps(MANIFEST),
    )["image"]
    return moto_env, image["imageId"]["imageDigest"]


def test_the_digest_of_an_existing_tag_is_found(pushed):
    env, digest = pushed
    found = _make(env, "ecr-image-digest", ECR_REPOSITORY=REPOSITORY, IMAGE_TAG=SHA)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == digest


def test_a_missing_tag_prints_nothing_and_succeeds(pushed):
    env, _ = pushed
    missing = _make(env, "ecr-image-digest", ECR_REPOSITORY=REPOSITORY, IMAGE_TAG="f" * 40)
    assert (missing.returncode, missing.stdout.strip()) == (0, "")


def test_other_errors_fail_with_the_cli_message(pushed):
    env, _ = pushed
    failed = _make(env, "ecr-image-digest", ECR_REPOSITORY="no-such-repository", IMAGE_TAG=SHA)
    assert failed.returncode != 0
    assert "RepositoryNotFoundException" in failed.stderr


def test_latest_is_retagged_by_manifest_and_a_second_time_is_a_no_op(pushed):
    env, digest = pushed
    for _ in range(2):
        tagged = _make(env, "ecr-tag", ECR_REPOSITORY=REPOSITORY, IMAGE_TAG="latest", IMAGE_DIGEST=digest)
        assert tagged.returncode == 0, tagged.stderr
        assert tagged.stdout.strip() == f"{REPOSITORY}:latest -> {digest}"
    latest = _make(env, "ecr-image-digest", ECR_REPOSITORY=REPOSITORY, IMAGE_TAG="latest")
    assert latest.stdout.strip() == digest


def test_missing_settings_are_named():
    refused = subprocess.run(
        ["make", "--no-print-directory", "ecr-tag", "IMAGE_TAG=latest"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "ecr-tag: set ECR_REPOSITORY, IMAGE_TAG and IMAGE_DIGEST" in refused.stderr
