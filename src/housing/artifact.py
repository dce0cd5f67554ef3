"""The serving artifact contract: ``model.onnx`` plus ``metadata.json`` in one directory.

Written by the export stage, read by the model server. Standard library only, so the serving image
can import it without the training stack.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from housing.errors import DataError, ModelIntegrityError

METADATA_FILE = "metadata.json"
ONNX_FILE = "model.onnx"
SCHEMA_VERSION = 1
# Written by earlier exports; ignored on read. The artifact holds only what its inputs determine, so a rebuild
# is byte-identical: when and from which commit it was made is logged to MLflow by the register stage.
LEGACY_KEYS = frozenset({"git_revision", "created_at"})


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    min: float
    max: float


@dataclass(frozen=True)
class ModelMetadata:
    model_name: str
    model_version: str
    features: tuple[FeatureSpec, ...]
    target: str
    onnx_sha256: str
    input_name: str = "input"
    output_name: str = "variable"
    onnx_file: str = ONNX_FILE
    training_data_sha256: str = ""
    holdout_sha256: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    parity_max_abs_diff: float | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = [asdict(f) for f in self.features]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = METADATA_FILE) -> ModelMetadata:
        data = {k: v for k, v in data.items() if k not in LEGACY_KEYS}
        try:
            features = tuple(FeatureSpec(**f) for f in data["features"])
            return cls(**{**data, "features": features})
        except (KeyError, TypeError) as exc:
            raise DataError(f"{source}: not a valid model metadata file ({exc})") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write via a temp file + rename so a crash never leaves a half-written artifact.

    The file gets the mode a plain ``open()`` gives (0666 less the umask, usually 0644), not ``mkstemp``'s
    0600: a ``models/`` directory mounted into the serving image must be readable by the image's own user.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # O_EXCL: never follow or reuse an existing file (what mkstemp guaranteed besides its mode).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def write_metadata(model_dir: Path, metadata: ModelMetadata) -> Path:
    path = model_dir / METADATA_FILE
    atomic_write_json(path, metadata.to_dict())
    return path


def read_metadata(model_dir: Path) -> ModelMetadata:
    path = model_dir / METADATA_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: model metadata not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    return ModelMetadata.from_dict(data, source=str(path))


def onnx_session(payload: bytes, threads: int = 1):
    """An onnxruntime session on the CPU; one intra-op thread by default (serving runs one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def load_verified(model_dir: Path) -> tuple[ModelMetadata, bytes]:
    """Return the metadata and ONNX bytes, refusing a model whose sha256 differs from the metadata's."""
    metadata = read_metadata(model_dir)
    onnx_path = model_dir / metadata.onnx_file
    try:
        payload = onnx_path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{onnx_path}: ONNX model not found") from None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != metadata.onnx_sha256:
        raise ModelIntegrityError(
            f"{onnx_path}: sha256 {actual} does not match {metadata.onnx_sha256} recorded in "
            f"{model_dir / METADATA_FILE}; refusing to load a model that may have been tampered with"
        )
    return metadata, payload
