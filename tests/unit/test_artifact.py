"""housing.artifact: atomic writes give artifacts a normal file mode, so a mounted models/ stays readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from housing.artifact import atomic_write_bytes, write_metadata


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test and put the previous one back."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize(
    ("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)], ids=["022", "002", "077"]
)
def test_written_files_get_0666_less_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    target = tmp_path / "models" / "model.onnx"
    atomic_write_bytes(target, b"onnx bytes")
    assert target.read_bytes() == b"onnx bytes"
    assert mode(target) == expected
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]  # no temp file left behind


def test_exported_metadata_is_readable_by_other_users(tmp_path, umask, model_dir):
    """What the serving image's uid 10001 needs from a models/ directory the pipeline wrote (as root)."""
    from housing.artifact import read_metadata

    umask(0o022)
    write_metadata(tmp_path, read_metadata(model_dir))
    assert mode(tmp_path / "metadata.json") & stat.S_IROTH
    for written in model_dir.iterdir():  # the export stage's own files, written the same way
        assert mode(written) & stat.S_IROTH, f"{written.name}: {oct(mode(written))}"


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "metadata.json"
    atomic_write_bytes(target, b"previous")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.json"]


def test_rewriting_replaces_the_content(tmp_path):
    target = tmp_path / "model.onnx"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
