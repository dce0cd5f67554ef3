"""The GitHub API stand-in's answers that the act self-tests do not reach: pagination, runs, refusals.

Plain HTTPS calls (the session's CA), no act: fast, and each asserts GitHub's documented behaviour.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from act import ActServices
from scenario_repo import ScenarioRepo
from standins.github_api import GitHubApi


class Client:
    """HTTPS calls to the stand-in (the session's CA), authorised with the job token unless told otherwise."""

    def __init__(self, api: GitHubApi, context: ssl.SSLContext) -> None:
        self.api, self.context = api, context

    def __call__(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any, dict]:
        """(status, JSON answer, headers)."""
        request = urllib.request.Request(
            f"{self.api.api_url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"token {token or self.api.actions_token}"},
        )
        try:
            with urllib.request.urlopen(request, context=self.context) as response:
                data = response.read()
                return response.status, json.loads(data) if data else None, dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read()), dict(error.headers)


@pytest.fixture
def api(act_services: ActServices) -> GitHubApi:
    return act_services.api


@pytest.fixture
def call(act_services: ActServices) -> Client:
    return Client(act_services.api, act_services.tls.client_context())


def test_comments_are_paginated_like_github(api: GitHubApi, call: Client) -> None:
    number = api.open_pull_request("feature")["number"]
    repo = f"/repos/{api.repository}"
    for index in range(5):
        assert call("POST", f"{repo}/issues/{number}/comments", {"body": f"c{index}"})[0] == 201

    status, page_two, headers = call("GET", f"{repo}/issues/{number}/comments?per_page=2&page=2")

    assert status == 200
    assert [c["body"] for c in page_two] == ["c2", "c3"]
    assert 'per_page=2&page=3>; rel="next"' in headers["Link"]
    assert 'page=3>; rel="last"' in headers["Link"]
    assert "Link" not in call("GET", f"{repo}/issues/{number}/comments?per_page=2&page=3")[2]


def test_workflow_runs_are_filtered_by_commit_and_status(api: GitHubApi, call: Client) -> None:
    api.add_workflow_run("ci.yml", "a" * 40, conclusion="failure")
    passed = api.add_workflow_run("ci.yml", "b" * 40)
    api.add_workflow_run("ci.yml", "b" * 40, status="in_progress", conclusion=None)
    api.add_workflow_run("cd.yml", "b" * 40)
    runs = f"/repos/{api.repository}/actions/workflows/ci.yml/runs"

    _, succeeded, _ = call("GET", f"{runs}?head_sha={'b' * 40}&status=success")
    _, completed, _ = call("GET", f"{runs}?head_sha={'b' * 40}&status=completed")
    _, everything, _ = call("GET", runs)

    assert [r["id"] for r in succeeded["workflow_runs"]] == [passed["id"]]
    assert completed["total_count"] == 1
    assert everything["total_count"] == 3
    assert [r["head_sha"][0] for r in everything["workflow_runs"]] == ["b", "b", "a"]  # newest first


def test_enabling_a_workflow_is_recorded(api: GitHubApi, call: Client) -> None:
    status, answer, _ = call("PUT", f"/repos/{api.repository}/actions/workflows/retrain.yml/enable")

    assert (status, answer, api.enabled_workflows) == (204, None, ["retrain.yml"])


def test_unknown_calls_other_repositories_and_bad_tokens_are_refused_and_recorded(
    api: GitHubApi, call: Client
) -> None:
    assert call("GET", f"/repos/{api.repository}/actions/secrets")[:2] == (
        404,
        {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"},
    )
    assert call("GET", "/repos/someone/else/pulls")[0] == 404
    assert call("GET", f"/repos/{api.repository}/pulls", token="ghp_forged")[:2] == (
        401,
        {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"},
    )
    assert [(r.path, r.status) for r in api.unexpected] == [
        (f"/repos/{api.repository}/actions/secrets", 404),
        ("/repos/someone/else/pulls", 404),
    ]
    assert api.requests[-1].route == "list_pulls"  # a refused token is still a known route


def test_pull_requests_are_validated_against_origin(
    api: GitHubApi, call: Client, scenario_repo: ScenarioRepo
) -> None:
    token = api.add_user("octocat")
    pulls = f"/repos/{api.repository}/pulls"
    owner = api.repository.split("/")[0]
    scenario_repo.commit("work", {"a.txt": "a\n"}, branch="feature")
    scenario_repo.checkout("main")
    scenario_repo.git("push", "--quiet", "origin", "main:empty")

    missing = call("POST", pulls, {"title": "t", "head": "nope", "base": "main"}, token)
    no_commits = call("POST", pulls, {"title": "t", "head": f"{owner}:empty", "base": "main"}, token)
    created = call("POST", pulls, {"title": "t", "head": f"{owner}:feature", "base": "main"}, token)
    again = call("POST", pulls, {"title": "t", "head": f"{owner}:feature", "base": "main"}, token)

    assert (missing[0], missing[1]["errors"]) == (
        422,
        [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
    )
    assert (no_commits[0], no_commits[1]["errors"][0]["message"]) == (
        422,
        "No commits between main and empty",
    )
    assert (created[0], created[1]["head"]["sha"]) == (201, scenario_repo.head("feature"))
    assert again[1]["errors"][0]["message"] == f"A pull request already exists for {owner}:feature."
    _, found, _ = call("GET", f"{pulls}?state=open&head={owner}:feature&base=main")
    assert [p["number"] for p in found] == [created[1]["number"]]
