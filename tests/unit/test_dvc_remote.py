"""The DVC remote from DVC_REMOTE_URL, and the pull-request check that everything pinned was pushed.

Each test builds a small git + DVC repository with one tracked input and one stage output, and a directory
remote (what the workflow runs use; an S3 URL goes through the same DVC commands).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from housing import dvc_remote
from housing.errors import ConfigError, DataError

DVC = str(Path(sys.executable).with_name("dvc"))


def _run(repo: Path, *cmd: str) -> str:
    result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{cmd}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A committed project whose dvc.lock pins `out.txt`, made from the DVC-tracked `data/`."""
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "data" / "in.txt").write_text("rows\n")
    (root / "dvc.yaml").write_text(
        "stages:\n  make:\n    cmd: tr a-z A-Z < data/in.txt > out.txt\n"
        "    deps: [data]\n    outs: [out.txt]\n"
    )
    _run(root, "git", "init", "-q", "-b", "main")
    _run(root, "git", "config", "user.email", "ci@example.com")
    _run(root, "git", "config", "user.name", "CI")
    _run(root, DVC, "init", "-q")
    _run(root, DVC, "config", "core.analytics", "false")
    _run(root, DVC, "add", "-q", "data")
    _run(root, DVC, "repro", "-q")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "pipeline")
    monkeypatch.chdir(root)
    monkeypatch.delenv(dvc_remote.URL_ENV, raising=False)
    return root


def test_configure_takes_the_url_from_the_environment_without_committing_it(repo, tmp_path, monkeypatch):
    assert dvc_remote.configure() is None  # unset: nothing to do
    assert dvc_remote.remote_url() is None
    monkeypatch.setenv(dvc_remote.URL_ENV, str(tmp_path / "remote"))
    assert dvc_remote.configure() == str(tmp_path / "remote")
    assert dvc_remote.remote_url() == str(tmp_path / "remote")
    assert "remote" not in (repo / ".dvc" / "config").read_text()  # .dvc/config.local, untracked
    assert _run(repo, "git", "status", "--porcelain") == ""
    monkeypatch.setenv(dvc_remote.URL_ENV, "s3://team-bucket/dvc")  # a new URL replaces the old one
    dvc_remote.configure()
    assert dvc_remote.remote_url() == "s3://team-bucket/dvc"


def test_without_a_remote_the_error_names_the_setting(repo):
    with pytest.raises(ConfigError, match=r"no DVC remote: set DVC_REMOTE_URL \(a repository variable"):
        dvc_remote.check()


def test_check_fails_until_everything_pinned_is_pushed(repo, tmp_path):
    dvc_remote.configure(str(tmp_path / "remote"))
    with pytest.raises(DataError) as failed:
        dvc_remote.check()
    message = str(failed.value)
    assert "2 output(s) pinned by dvc.lock / data.dvc are not on the remote" in message
    assert "data (new), out.txt (new)." in message  # a directory once, not each of its files
    assert "Run `dvc push` where they were produced" in message
    _run(repo, DVC, "push", "-q")
    assert dvc_remote.check() == str(tmp_path / "remote")


def test_a_fresh_clone_sees_what_was_never_pushed_as_missing(repo, tmp_path):
    """CI's view: an empty cache, and a commit whose author pushed the data but not the new output."""
    remote = tmp_path / "remote"
    dvc_remote.configure(str(remote))
    _run(repo, DVC, "push", "-q", "data.dvc")  # the output was not pushed
    clone = tmp_path / "clone"
    _run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    os.chdir(clone)
    dvc_remote.configure(str(remote))
    assert dvc_remote.unpushed() == {"out.txt": "missing"}


def test_cli_prints_one_line_and_exits_2(repo, capsys):
    with pytest.raises(SystemExit) as exited:
        dvc_remote.main(["check"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("error: no DVC remote: set DVC_REMOTE_URL")
