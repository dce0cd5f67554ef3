"""`make data`'s hash check against a real DVC repository in a temp directory (fresh-clone situations)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from housing.data_setup import DVC_FILE, data_matches_dvc_file

DVC = str(Path(sys.executable).with_name("dvc"))


@pytest.fixture
def dvc_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run([DVC, "init", "-q"], check=True)
    Path("data").mkdir()
    Path("data/raw.csv").write_text("a,b\n1,2\n")
    subprocess.run([DVC, "add", "-q", "data"], check=True)
    return tmp_path


def test_matching_data_with_an_empty_cache_is_verified_and_cached(dvc_repo):
    recorded = DVC_FILE.read_text()
    shutil.rmtree(".dvc/cache")  # a fresh clone: files rebuilt, nothing cached yet
    assert data_matches_dvc_file() is True
    assert DVC_FILE.read_text() == recorded
    assert any(Path(".dvc/cache").rglob("*")), "the verified files are now in the local cache"
    assert data_matches_dvc_file() is True  # and plain `dvc status` agrees


def test_different_data_does_not_match_and_leaves_data_dvc_untouched(dvc_repo):
    recorded = DVC_FILE.read_text()
    shutil.rmtree(".dvc/cache")
    Path("data/raw.csv").write_text("a,b\n1,3\n")
    assert data_matches_dvc_file() is False
    assert DVC_FILE.read_text() == recorded


def test_missing_data_does_not_match(dvc_repo):
    shutil.rmtree("data")
    assert data_matches_dvc_file() is False
