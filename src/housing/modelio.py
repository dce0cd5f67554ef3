"""Model I/O shared by the stages: the fitted pipeline as a canonical skops file, and its ONNX compilation.

Loading never unpickles: skops rebuilds only the types listed in ``SKOPS_TRUSTED_TYPES``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from housing.artifact import atomic_write_bytes
from housing.errors import DataError
from housing.features import register_onnx_converter

# Types skops may rebuild when loading our own pipeline (never arbitrary pickles).
SKOPS_TRUSTED_TYPES = [
    "housing.features.HousingFeatures",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.tree._tree.Tree",
]


# A fixed timestamp for every member of the skops archive (the zip format's earliest date).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def canonical_skops(payload: bytes) -> bytes:
    """The same skops archive with process-specific details removed, so equal models give equal bytes.

    skops names each array file and memo entry after ``id(obj)`` (a memory address) and stamps every zip
    member with the current time. Renumbering the ids in order of first appearance in ``schema.json`` and
    fixing the timestamps changes nothing skops reads back (ids are only keys that link entries).
    """
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        schema = json.loads(archive.read("schema.json"))
        members = {name: archive.read(name) for name in archive.namelist() if name != "schema.json"}
    renumbered: dict[int, int] = {}

    def new_id(old: int) -> int:
        return renumbered.setdefault(old, len(renumbered) + 1)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    out[key] = new_id(value)
                elif key == "file" and isinstance(value, str) and value.endswith(".npy"):
                    out[key] = f"{new_id(int(value.removesuffix('.npy')))}.npy"
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    schema = walk(schema)
    files = {f"{new_id(int(name.removesuffix('.npy')))}.npy": data for name, data in members.items()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in [("schema.json", json.dumps(schema, indent=2).encode()), *sorted(files.items())]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def save_pipeline(pipeline: Pipeline, path: Path) -> None:
    import skops.io as sio

    atomic_write_bytes(path, canonical_skops(sio.dumps(pipeline)))


def load_pipeline(path: Path) -> Pipeline:
    import skops.io as sio

    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: trained model not found (run the train stage)") from None
    return sio.loads(payload, trusted=SKOPS_TRUSTED_TYPES)


def to_onnx_bytes(pipeline: Pipeline, n_features: int, opset: int) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    register_onnx_converter()
    model = to_onnx(
        pipeline,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        target_opset={"": opset, "ai.onnx.ml": 3},
    )
    # skl2onnx collects the opset imports in a set: their order follows PYTHONHASHSEED. Sorted, the same
    # pipeline always serialises to the same bytes (models/ is a DVC output).
    imports = sorted(model.opset_import, key=lambda entry: (entry.domain, entry.version))
    del model.opset_import[:]
    model.opset_import.extend(imports)
    return model.SerializeToString()


def onnx_predict(session, X: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: X.astype(np.float32, copy=False)})[0].ravel()
