"""CD's gate for manual deploys: `housing ci-passed` asks GitHub's API (a stand-in here) about the commit."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from housing.cli import app
from housing.deploy.ci_gate import CiGateError, GitHubContext, successful_run
from loopback import LoopbackServer, QuietHandler

GREEN = "a" * 40
RED = "b" * 40


class RunsStandin(LoopbackServer):
    """GET /repos/acme/housing-mlops/actions/workflows/ci.yml/runs: one successful run, for GREEN only."""

    def __init__(self) -> None:
        self.queries: list[dict[str, list[str]]] = []
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                outer.queries.append(query)
                if parts.path != "/repos/acme/housing-mlops/actions/workflows/ci.yml/runs":
                    status, body = 404, {"message": "Not Found"}
                elif self.headers.get("Authorization") != "Bearer t0ken":
                    status, body = 401, {"message": "Bad credentials"}
                else:
                    ok = query.get("head_sha") == [GREEN] and query.get("status") == ["success"]
                    runs = (
                        [{"html_url": "https://github.com/acme/housing-mlops/actions/runs/7"}] if ok else []
                    )
                    status, body = 200, {"total_count": len(runs), "workflow_runs": runs}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)


@pytest.fixture
def github():
    with RunsStandin() as server:
        yield server


def test_a_commit_whose_ci_passed_may_deploy(github):
    context = GitHubContext(github.url, "acme/housing-mlops", "t0ken")
    assert successful_run(context, GREEN) == "https://github.com/acme/housing-mlops/actions/runs/7"
    assert github.queries[-1] == {"head_sha": [GREEN], "status": ["success"], "per_page": ["1"]}


def test_a_commit_without_a_green_ci_run_is_refused(github):
    context = GitHubContext(github.url, "acme/housing-mlops", "t0ken")
    with pytest.raises(CiGateError, match=f"commit {RED} has no successful ci.yml run in acme/housing-mlops"):
        successful_run(context, RED)


@pytest.mark.parametrize(
    ("context", "sha", "message"),
    [
        (("acme/housing-mlops", "wrong"), GREEN, "answered 401: .*actions: read"),
        (("acme/other", "t0ken"), GREEN, "answered 404"),
        (("acme/housing-mlops", "t0ken"), "abc123", "'abc123' is not a full 40-hex commit SHA"),
    ],
)
def test_errors_name_the_cause(github, context, sha, message):
    with pytest.raises(CiGateError, match=message):
        successful_run(GitHubContext(github.url, *context), sha)


def test_only_main_is_deployed(github):
    context = GitHubContext(github.url, "acme/housing-mlops", "t0ken")
    assert successful_run(context, GREEN, ref="refs/heads/main")
    with pytest.raises(CiGateError, match="deploys refs/heads/main only; this run is on refs/heads/feature"):
        successful_run(context, GREEN, ref="refs/heads/feature")


def test_cli_reads_the_runner_environment(github, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/housing-mlops")
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    passed = CliRunner().invoke(app, ["ci-passed", "--sha", GREEN])
    assert passed.exit_code == 0, passed.output
    assert f"ci.yml passed for {GREEN}" in passed.output
    refused = CliRunner().invoke(app, ["ci-passed", "--sha", RED])
    assert isinstance(refused.exception, CiGateError)
    monkeypatch.delenv("GITHUB_TOKEN")
    unset = CliRunner().invoke(app, ["ci-passed", "--sha", GREEN])
    assert "['GITHUB_TOKEN'] not set" in str(unset.exception)
