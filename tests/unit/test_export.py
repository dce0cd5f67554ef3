import json
import os
import shutil

import numpy as np
import pytest

from housing.artifact import load_verified, read_metadata, sha256_file
from housing.errors import GateError, ModelIntegrityError
from housing.stages.export import export_model


def test_metadata_describes_the_artifact(model_dir, small_params):
    metadata = read_metadata(model_dir)
    assert metadata.onnx_sha256 == sha256_file(model_dir / "model.onnx")
    assert metadata.model_version == f"sha-{metadata.onnx_sha256[:12]}"
    assert metadata.feature_names == list(small_params.data.features)
    assert metadata.features[0].min == small_params.validate_.columns["MedInc"].min
    assert metadata.parity_max_abs_diff <= 1e-4
    assert {"r2", "mae", "rmse", "mdape", "ppe10"} <= set(metadata.metrics)
    assert metadata.training_data_sha256 == "test-train"


def test_export_is_byte_reproducible(tmp_path, trained_pipeline, small_split, small_params):
    """models/ is a DVC output: exporting the same pipeline again (elsewhere, later) gives the same bytes.
    No clock, host or git state goes into it (registration logs those to MLflow)."""
    _, _, X_test, y_test = small_split
    hashes = {"train": "t", "test": "h"}
    export_model(trained_pipeline, X_test, y_test, small_params, tmp_path / "a", hashes)
    export_model(trained_pipeline, X_test, y_test, small_params, tmp_path / "b", hashes)
    for name in ("model.onnx", "metadata.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    recorded = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert not {"created_at", "git_revision"} & set(recorded)


def test_metadata_written_by_earlier_exports_still_loads(tmp_path, model_dir):
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    data = json.loads((copy / "metadata.json").read_text())
    data |= {"git_revision": "abc-dirty", "created_at": "2026-11-30T12:00:00+00:00"}
    (copy / "metadata.json").write_text(json.dumps(data))
    assert read_metadata(copy).model_version == data["model_version"]


def test_parity_failure_writes_nothing(tmp_path, trained_pipeline, small_split, small_params):
    _, _, X_test, y_test = small_split
    strict = small_params.model_copy(
        update={"export": small_params.export.model_copy(update={"max_abs_diff": 1e-12})}
    )
    # A model whose predictions are not exactly float32-representable cannot match to 1e-12.
    with pytest.raises(GateError, match=r"parity failed .* > export.max_abs_diff = 1e-12; nothing written"):
        export_model(trained_pipeline, X_test, y_test, strict, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_tampered_model_is_refused(tmp_path, model_dir):
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    payload = bytearray((copy / "model.onnx").read_bytes())
    payload[-1] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(payload))
    with pytest.raises(ModelIntegrityError, match=r"model\.onnx: sha256 .* does not match"):
        load_verified(copy)


def test_metadata_is_plain_json(model_dir):
    data = json.loads((model_dir / "metadata.json").read_text())
    assert data["input_name"] == "input"
    assert data["features"][7]["name"] == "Longitude"
    assert np.isfinite(data["metrics"]["mae"])


def test_onnx_bytes_do_not_depend_on_the_hash_seed(tmp_path, trained_pipeline):
    """skl2onnx gathers opset imports in a set; each process has its own string hash seed (with seeds 20,
    22 and 37 the unsorted export listed ai.onnx.ml first)."""
    import subprocess
    import sys

    from housing.modelio import save_pipeline

    save_pipeline(trained_pipeline, tmp_path / "model.skops")
    script = (
        "import hashlib, sys; from pathlib import Path; from housing.modelio import load_pipeline; "
        "from housing.modelio import to_onnx_bytes; "
        "p = load_pipeline(Path(sys.argv[1])); print(hashlib.sha256(to_onnx_bytes(p, 8, 17)).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "model.skops")],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        for seed in ("1", "20", "22", "37")
    }
    assert len(digests) == 1
