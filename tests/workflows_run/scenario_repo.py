"""Scenario repositories for act runs: what GitHub would hold (a bare ``origin``) and the clone act runs in.

``origin`` starts with the committed files of this checkout's HEAD as one commit on ``main``. The work
clone's ``origin`` remote is ``https://<api host>/<owner>/<repo>.git``: act reads owner/repo from it, and
create-pull-request derives the API (``https://<host>/api/v3``) from it; a ``url.<bare>.insteadOf`` entry in
the scenario's own git config (``GIT_CONFIG_GLOBAL``, also given to act, hence to every job) makes git fetch
and push the bare repository instead. Scenarios commit on branches with ``commit`` and read what jobs pushed
with ``origin_refs`` and ``origin_show``.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_REPOSITORY = "acme/housing-mlops"


def _git(*args: str, cwd: Path, env: Mapping[str, str]) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=dict(env), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass(frozen=True)
class ScenarioRepo:
    origin: Path  # bare repository: GitHub's copy
    work: Path  # the clone act runs in (act -C); its checked-out branch is what the jobs see
    remote_url: str
    repository: str  # owner/name
    git_config: Path
    base_env: Mapping[str, str]  # the environment git commands run with (tests' and act's)

    @classmethod
    def create(
        cls,
        source: Path,
        directory: Path,
        host: str,
        base_env: Mapping[str, str],
        repository: str = DEFAULT_REPOSITORY,
    ) -> ScenarioRepo:
        """``origin`` with ``source``'s committed HEAD as the one commit of main, and a work clone of it."""
        origin, work, git_config = directory / "origin.git", directory / "work", directory / "gitconfig"
        remote_url = f"https://{host}/{repository}.git"
        git_config.write_text(
            "[user]\n\tname = Scenario Author\n\temail = scenario@example.com\n"
            "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
            f'[url "{origin}"]\n\tinsteadOf = {remote_url}\n'
        )
        env = {**base_env, "GIT_CONFIG_GLOBAL": str(git_config), "GIT_CONFIG_NOSYSTEM": "1"}
        _git("init", "--quiet", "--bare", str(origin), cwd=directory, env=env)
        _git("clone", "--quiet", remote_url, str(work), cwd=directory, env=env)
        snapshot = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD"], cwd=source, capture_output=True, check=True
        )
        with tarfile.open(fileobj=io.BytesIO(snapshot.stdout)) as archive:
            archive.extractall(work, filter="tar")
        source_sha = _git("rev-parse", "--short", "HEAD", cwd=source, env=env)
        _git("add", "--all", cwd=work, env=env)
        _git("commit", "--quiet", "-m", f"snapshot of {source_sha}", cwd=work, env=env)
        _git("push", "--quiet", "-u", "origin", "main", cwd=work, env=env)
        return cls(origin, work, remote_url, repository, git_config, env)

    @property
    def env(self) -> dict[str, str]:
        return dict(self.base_env)

    def git(self, *args: str) -> str:
        return _git(*args, cwd=self.work, env=self.base_env)

    def head(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref)

    def checkout(self, branch: str) -> None:
        """Switch the work clone to ``branch``, created from the current HEAD if it is new."""
        exists = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            cwd=self.work,
            env=self.env,
            capture_output=True,
        )
        self.git("switch", "--quiet", *(() if exists.returncode == 0 else ("-c",)), branch)

    def commit(
        self,
        message: str,
        files: Mapping[str, str | bytes | None],
        *,
        branch: str | None = None,
        push: bool = True,
    ) -> str:
        """Write ``files`` (None deletes) on ``branch`` (default: the current one), commit, push: the sha."""
        if branch is not None:
            self.checkout(branch)
        for name, content in files.items():
            path = self.work / name
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        self.git("add", "--all", "--", *files)
        self.git("commit", "--quiet", "-m", message)
        if push:
            self.git("push", "--quiet", "-u", "origin", "HEAD")
        return self.head()

    # --- what jobs left in origin --------------------------------------------------------------------------
    def origin_git(self, *args: str) -> str:
        return _git("--git-dir", str(self.origin), *args, cwd=self.origin, env=self.base_env)

    def origin_refs(self) -> dict[str, str]:
        """Branch name -> sha in origin."""
        lines = self.origin_git("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
        return dict(line.split(" ", 1) for line in lines.splitlines())

    def origin_show(self, ref: str, path: str) -> str:
        return self.origin_git("show", f"{ref}:{path}")

    def origin_changed_files(self, ref: str, base: str = "main") -> list[str]:
        return self.origin_git("diff", "--name-only", f"{base}...{ref}").splitlines()

    # --- event payloads (act --eventpath): the fields workflows and act read --------------------------------
    def repository_payload(self) -> dict[str, Any]:
        owner, name = self.repository.split("/")
        return {
            "full_name": self.repository,
            "name": name,
            "owner": {"login": owner},
            "default_branch": "main",
        }

    def push_event(self, branch: str = "main") -> dict[str, Any]:
        """A push of the last commit of ``branch`` (before = its parent; zeros, as GitHub sends for a new
        branch, when it has none)."""
        after = self.head(f"refs/heads/{branch}")
        parents = self.git("rev-list", "--parents", "-n", "1", after).split()[1:]
        return {
            "ref": f"refs/heads/{branch}",
            "before": parents[0] if parents else "0" * 40,
            "after": after,
            "deleted": False,
            "forced": False,
            "head_commit": {"id": after, "message": self.git("log", "-1", "--format=%s", after)},
            "repository": self.repository_payload(),
        }

    def pull_request_event(self, pull: Mapping[str, Any], action: str = "synchronize") -> dict[str, Any]:
        """A pull_request event for ``pull`` (GitHubApi.open_pull_request) at its branches' current heads."""
        current = {
            **pull,
            "head": {**pull["head"], "sha": self.head(f"refs/heads/{pull['head']['ref']}")},
            "base": {**pull["base"], "sha": self.head(f"refs/heads/{pull['base']['ref']}")},
        }
        return {
            "action": action,
            "number": pull["number"],
            "pull_request": current,
            "repository": self.repository_payload(),
        }

    def schedule_event(self, cron: str) -> dict[str, Any]:
        return {"schedule": cron, "repository": self.repository_payload()}

    def workflow_dispatch_event(self, inputs: Mapping[str, Any], branch: str = "main") -> dict[str, Any]:
        return {
            "ref": f"refs/heads/{branch}",
            "inputs": dict(inputs),
            "repository": self.repository_payload(),
        }
