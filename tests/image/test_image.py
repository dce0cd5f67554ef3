"""The serving image itself, built from the Dockerfile and run as its own user (`make image-check`)."""

from __future__ import annotations

import json
import stat
import time

import pytest
from image_support import (
    BUILDAH_MOUNT_POINTS,
    IMAGE_UID,
    LOG_VOLUME,
    REPO_MODELS,
    locked_versions,
    process_uids,
)
from packaging.utils import canonicalize_name
from prometheus_client.parser import text_string_to_metric_families

from housing.artifact import read_metadata
from housing.inference_log import read_records
from integration.serving.serving_support import ROW, http

pytestmark = [pytest.mark.image, pytest.mark.integration]

TRAINING_STACK = ("sklearn", "pandas", "scipy", "mlflow", "dvc", "evidently", "skl2onnx", "matplotlib")
# What a Python 3.11 venv brings besides the lock's packages and the project.
VENV_SEED = {"pip", "setuptools"}


def rows_within_ranges(metadata, count: int = 4) -> list[list[float]]:
    """The README's example row plus rows spread over each feature's valid range (deterministic)."""
    spread = [
        [
            f.min + (f.max - f.min) * (((i * 7 + j * 3) % 10) + 0.5) / 10
            for j, f in enumerate(metadata.features)
        ]
        for i in range(count)
    ]
    return [ROW, *spread]


def sample_values(metrics_text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


def predict_v1(server, name: str, rows, request_id: str):
    return http(
        "POST", f"{server.url}/v1/models/{name}:predict", {"instances": rows}, {"X-Request-Id": request_id}
    )


def test_the_image_runs_as_uid_10001_with_its_healthcheck_and_cmd(
    image_config, container, baked_server, tmp_path
):
    assert image_config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert image_config["Cmd"] == ["housing", "serve"]
    assert image_config["Healthcheck"]["Test"][0] == "CMD"
    assert LOG_VOLUME in image_config["Volumes"]
    ids = container.run("id", "-u", log_dir=tmp_path)
    assert ids.stdout.split() == [str(IMAGE_UID)], ids.stderr
    # The serving process itself, seen from the host: real, effective, saved and filesystem uid.
    assert set(process_uids(baked_server.server_pid())) == {IMAGE_UID}


def test_v1_and_v2_predictions_equal_the_hosts(baked_server, host_server, baked_metadata):
    name = baked_metadata.model_name
    rows = rows_within_ranges(baked_metadata)
    in_image = predict_v1(baked_server, name, rows, "v1-equal")
    on_host = predict_v1(host_server, name, rows, "v1-equal")
    assert in_image[0] == on_host[0] == 200, (in_image, on_host)
    assert len(in_image[2]["predictions"]) == len(rows)
    assert in_image[2] == on_host[2]
    assert in_image[1]["X-Model-Version"] == baked_metadata.model_version

    request = {
        "id": "v2-equal",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [len(rows), 8], "data": rows}],
    }
    v2_image = http("POST", f"{baked_server.url}/v2/models/{name}/infer", request)
    v2_host = http("POST", f"{host_server.url}/v2/models/{name}/infer", request)
    assert v2_image[0] == v2_host[0] == 200, (v2_image, v2_host)
    assert v2_image[2] == v2_host[2]
    assert v2_image[2]["model_version"] == baked_metadata.model_version
    assert v2_image[2]["outputs"][0]["data"] == in_image[2]["predictions"]


def test_metrics_count_the_predictions_and_name_the_model_version(baked_server, baked_metadata):
    name = baked_metadata.model_name
    labels = frozenset({"model": name, "variant": "champion"}.items())
    before = sample_values(http("GET", f"{baked_server.url}/metrics")[2])
    rows = rows_within_ranges(baked_metadata)
    assert predict_v1(baked_server, name, rows, "metrics-1")[0] == 200
    assert predict_v1(baked_server, name, [[*ROW[:6], 99.0, ROW[7]]], "metrics-bad")[0] == 400  # latitude 99
    after = sample_values(http("GET", f"{baked_server.url}/metrics")[2])

    def delta(metric: str, extra: dict | None = None) -> float:
        key = (metric, labels | frozenset((extra or {}).items()))
        return after[key] - before.get(key, 0.0)

    assert delta("model_prediction_total") == 1
    assert delta("model_prediction_instances_total") == len(rows)
    assert delta("model_prediction_errors_total", {"reason": "out_of_range"}) == 1
    assert delta("model_prediction_latency_seconds_count") == 1
    version = labels | {("version", baked_metadata.model_version)}
    assert after[("model_version_info", version)] == 1


def test_the_images_healthcheck_passes_on_a_running_server_and_fails_on_a_stopped_one(
    container, image_config, tmp_path
):
    healthcheck = image_config["Healthcheck"]["Test"][1:]
    server = container.serve(tmp_path / "server")
    try:
        up = container.run(*healthcheck, log_dir=server.log_dir.parent, env=server.env, timeout=30)
        assert up.returncode == 0, up.stderr
    finally:
        server.stop()
    down = container.run(*healthcheck, log_dir=server.log_dir.parent, env=server.env, timeout=30)
    assert down.returncode != 0
    assert "Connection refused" in down.stderr


def test_no_training_package_is_installed(container, tmp_path):
    probe = (
        "import importlib, json\n"
        "found = {}\n"
        f"for name in {list(TRAINING_STACK)!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "        found[name] = True\n"
        "    except ModuleNotFoundError:\n"
        "        found[name] = False\n"
        "print(json.dumps(found))\n"
    )
    imports = container.run("python", "-c", probe, log_dir=tmp_path)
    assert imports.returncode == 0, imports.stderr
    assert json.loads(imports.stdout) == dict.fromkeys(TRAINING_STACK, False)
    listed = container.run("python", "-m", "pip", "list", "--format=json", log_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    # Exactly the lock (same versions), the project and the venv's own seed packages.
    assert set(installed) == set(locked_versions()) | {"housing-mlops"} | VENV_SEED
    assert {name: installed[name] for name in locked_versions()} == locked_versions()


def test_a_model_mounted_at_mnt_models_takes_precedence_over_the_baked_one(container, model_dir, tmp_path):
    model_dir.chmod(0o755)  # pytest makes it 0700; a models/ directory made by mkdir is 0755
    mounted = read_metadata(model_dir)
    baked = read_metadata(container.rootfs / "opt/housing/models")
    assert mounted.model_version != baked.model_version
    server = container.serve(tmp_path, models=model_dir)
    try:
        status, headers, body = http("GET", f"{server.url}/v2/models/{mounted.model_name}")
        assert status == 200
        assert body["versions"] == [mounted.model_version]
        status, headers, _ = predict_v1(server, mounted.model_name, [ROW], "mounted")
        assert status == 200
        assert headers["X-Model-Version"] == mounted.model_version
    finally:
        server.stop()


def test_a_models_dir_written_by_the_pipeline_is_readable_by_the_images_user(
    container, baked_metadata, tmp_path
):
    """`-v ./models:/mnt/models`: what the export stage wrote (as root here) must be readable by uid 10001."""
    for written in REPO_MODELS.iterdir():
        assert stat.S_IMODE(written.stat().st_mode) & stat.S_IROTH, (
            f"{written}: {oct(written.stat().st_mode)}"
        )
    server = container.serve(tmp_path, models=REPO_MODELS)
    try:
        starting = next(line for line in server.log_lines() if line["message"] == "model server starting")
        assert starting["model_dir"] == "/mnt/models"
        status, headers, _ = predict_v1(server, baked_metadata.model_name, [ROW], "repo-models")
        assert status == 200
        assert headers["X-Model-Version"] == baked_metadata.model_version
    finally:
        server.stop()


def test_the_server_writes_only_to_its_log_volume(container, baked_server, baked_metadata, tmp_path):
    # The view every run gets: the image's files are read-only, even where permissions allow writing (the
    # world-writable /tmp and /var/tmp), as under Kubernetes' readOnlyRootFilesystem.
    for path in ("/tmp/probe", "/var/tmp/probe", "/opt/venv/probe", "/opt/housing/models/probe"):
        attempt = container.run("sh", "-c", f": > {path}", log_dir=tmp_path)
        assert attempt.returncode != 0
        assert "Read-only file system" in attempt.stderr, attempt.stderr
    assert predict_v1(baked_server, baked_metadata.model_name, [ROW], "log-volume")[0] == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "log-volume" in {r["request_id"] for r in read_records(baked_server.log_dir, kind="prediction")}:
            break
        time.sleep(0.2)
    logs = list(baked_server.log_dir.iterdir())
    assert logs, f"nothing written under {LOG_VOLUME}"
    assert {(p.stat().st_uid, p.stat().st_gid) for p in logs} == {(IMAGE_UID, IMAGE_UID)}
    assert "log-volume" in {r["request_id"] for r in read_records(baked_server.log_dir, kind="prediction")}
    changed = {
        str(path.relative_to(container.rootfs))
        for path in container.rootfs.rglob("*")
        if not path.is_dir() and path.lstat().st_mtime >= baked_server.started
    }
    assert changed <= BUILDAH_MOUNT_POINTS, changed
