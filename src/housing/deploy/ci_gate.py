"""CD's gate: deploy only a commit whose CI passed.

On a push to main, ci.yml calls cd.yml only after every CI job succeeded. A manual ``workflow_dispatch`` of
cd.yml (a staging deploy, a re-deploy) has no such chain, so its first step asks GitHub's REST API whether a
run of ci.yml for that exact commit succeeded: ``GET /repos/{repo}/actions/workflows/{file}/runs?head_sha=
&status=success``. ``GITHUB_API_URL`` (set by the runner; GitHub Enterprise Server too), ``GITHUB_REPOSITORY``
and a token with ``actions: read`` come from the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from housing.errors import HousingError
from housing.monitoring.httpjson import request


class CiGateError(HousingError):
    """The commit has no successful CI run (or GitHub could not be asked)."""


@dataclass(frozen=True)
class GitHubContext:
    api_url: str
    repository: str
    token: str

    @classmethod
    def from_env(cls) -> GitHubContext:
        names = ("GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_TOKEN")
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            raise CiGateError(f"ci-passed: environment variable(s) {missing} not set (the runner sets them)")
        return cls(*(os.environ[name] for name in names))


DEPLOY_REF = "refs/heads/main"


def successful_run(context: GitHubContext, sha: str, workflow: str = "ci.yml", ref: str | None = None) -> str:
    """The URL of a successful run of ``workflow`` for commit ``sha``; :class:`CiGateError` if none, or if
    ``ref`` (the manual run's branch) is not main: the deploy roles and environments trust main only."""
    if ref is not None and ref != DEPLOY_REF:
        raise CiGateError(f"ci-passed: CD deploys {DEPLOY_REF} only; this run is on {ref} (run it on main)")
    if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
        raise CiGateError(f"ci-passed: --sha {sha!r} is not a full 40-hex commit SHA")
    query = urlencode({"head_sha": sha, "status": "success", "per_page": 1})
    url = (
        f"{context.api_url.rstrip('/')}/repos/{context.repository}/actions/workflows/"
        f"{quote(workflow)}/runs?{query}"
    )
    headers = {
        "Authorization": f"Bearer {context.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    try:
        response = request("GET", url, headers=headers, timeout=30)
    except OSError as exc:
        raise CiGateError(f"ci-passed: GitHub API {context.api_url} not reachable ({exc})") from None
    if not response.ok:
        raise CiGateError(
            f"ci-passed: GET {url} answered {response.status}: {response.text()} "
            "(the job needs `permissions: actions: read`)"
        )
    runs = (response.json() or {}).get("workflow_runs") or []
    if not runs:
        raise CiGateError(
            f"ci-passed: commit {sha} has no successful {workflow} run in {context.repository}: "
            "CD deploys only a commit whose CI passed (wait for it, or fix main)"
        )
    return str(runs[0].get("html_url", ""))
