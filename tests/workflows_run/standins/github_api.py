"""A stand-in for GitHub's REST API (Enterprise Server paths, ``/api/v3``) over TLS on 127.0.0.1.

It keeps the state the workflows touch: issue comments, pull requests (every call that
peter-evans/create-pull-request v8 makes without commit signing), workflow runs (answers set by the test) and
workflow enabling. Every request is recorded (method, path, query, JSON body, Authorization header, status,
matched route); anything it does not implement, or a call for another repository, gets GitHub's 404 JSON and
``route=None``, so a test can assert ``api.unexpected == []``. Tokens are checked: the job token
(``actions_token``, login github-actions[bot]) and the tokens of users added by the test; anything else is 401
"Bad credentials". The repository behaves as a private one (no anonymous reads).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from standins.tls import TlsFiles

from loopback import LoopbackServer, QuietHandler

API_PREFIX = "/api/v3"
ACTIONS_LOGIN = "github-actions[bot]"
DOCS_URL = "https://docs.github.com/rest"
# GitHub's answer when the job token opens a pull request while the repository setting "Allow GitHub Actions
# to create and approve pull requests" is off (its default).
ACTIONS_PR_FORBIDDEN = "GitHub Actions is not permitted to create or approve pull requests."
NO_BODY = 'Invalid request.\n\n"body" wasn\'t supplied.'
CONCLUSIONS = frozenset(
    ("action_required", "cancelled", "failure", "neutral", "skipped", "stale", "success", "timed_out")
)


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # below /api/v3, without the query
    query: dict[str, list[str]]
    body: Any  # parsed JSON, or None
    authorization: str | None
    status: int
    route: str | None  # the stand-in's handler, None when nothing here implements the call


def _invalid_pull(**error: str) -> ApiError:
    """GitHub's 422 for a pull request it refuses; create-pull-request matches on ``error["message"]``."""
    return ApiError(422, "Validation Failed", [{"resource": "PullRequest", **error}])


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _token_of(authorization: str | None) -> str | None:
    """The token in ``token X``, ``Bearer X`` or git's ``basic base64(x-access-token:X)``."""
    if not authorization or " " not in authorization:
        return None
    scheme, value = authorization.split(" ", 1)
    if scheme.lower() in {"token", "bearer"}:
        return value.strip()
    if scheme.lower() == "basic":
        return base64.b64decode(value).decode().partition(":")[2]
    return None


class GitHubApi(LoopbackServer):
    """Start it (``with GitHubApi(tls) as api``), point act at ``api.host``, inspect the state afterwards.

    ``origin`` is the bare repository behind the remote: pull requests check their branches in it.
    """

    def __init__(self, tls: TlsFiles, repository: str = "acme/housing-mlops", origin: Path | None = None):
        self.repository = repository
        self.origin = origin
        self.actions_token = f"ghs_{secrets.token_hex(16)}"
        self.tokens: dict[str, str] = {self.actions_token: ACTIONS_LOGIN}
        self.allow_actions_pull_requests = False  # GitHub's default for the repository setting
        self.pulls: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.workflow_runs: list[dict[str, Any]] = []
        self.enabled_workflows: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.lock = threading.Lock()
        self._ids = iter(range(1001, 10**9))
        self._numbers = iter(range(1, 10**6))
        self._routes = self._route_table()
        super().__init__(self._handler(), ssl_context=tls.server_context())

    # --- what tests use -------------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: act's --github-instance and the git remote's host."""
        return urlsplit(self.url).netloc

    @property
    def api_url(self) -> str:
        return f"{self.url}{API_PREFIX}"

    @property
    def unexpected(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route is None]

    def add_user(self, login: str) -> str:
        """A personal access token for ``login`` (e.g. the RETRAIN_PR_TOKEN secret)."""
        token = f"ghp_{secrets.token_hex(16)}"
        self.tokens[token] = login
        return token

    def open_pull_request(
        self, head: str, base: str = "main", title: str = "scenario", body: str = ""
    ) -> dict[str, Any]:
        """A pull request as if a person had opened it; its object is what a pull_request event carries."""
        with self.lock:
            return self._new_pull(
                {"head": head, "base": base, "title": title, "body": body}, login="octocat", validate=False
            )

    def add_workflow_run(
        self,
        workflow: str,
        head_sha: str,
        *,
        status: str = "completed",
        conclusion: str | None = "success",
        event: str = "push",
        head_branch: str = "main",
    ) -> dict[str, Any]:
        """A run that ``GET .../actions/workflows/{workflow}/runs`` reports (workflow: file name, ci.yml)."""
        with self.lock:
            run_id = next(self._ids)
            run = {
                "id": run_id,
                "name": workflow.removesuffix(".yml").removesuffix(".yaml"),
                "path": f".github/workflows/{workflow}",
                "head_sha": head_sha,
                "head_branch": head_branch,
                "event": event,
                "status": status,
                "conclusion": conclusion,
                "run_number": len(self.workflow_runs) + 1,
                "html_url": f"{self.url}/{self.repository}/actions/runs/{run_id}",
                "created_at": _now(),
            }
            self.workflow_runs.append(run)
            return run

    def add_comment(self, number: int, body: str, login: str = ACTIONS_LOGIN) -> dict[str, Any]:
        """A comment as if an earlier workflow run (the job token's bot) had posted it."""
        with self.lock:
            return self.create_comment(str(number), {"body": body}, login)[1]

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["issue_number"] == number]

    # --- routing --------------------------------------------------------------------------------------------
    def _route_table(self) -> list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]]:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        table = [
            ("GET", "", self.get_repository),
            ("GET", r"/issues/(?P<number>\d+)/comments", self.list_comments),
            ("POST", r"/issues/(?P<number>\d+)/comments", self.create_comment),
            ("GET", r"/issues/comments/(?P<comment_id>\d+)", self.get_comment),
            ("PATCH", r"/issues/comments/(?P<comment_id>\d+)", self.update_comment),
            ("DELETE", r"/issues/comments/(?P<comment_id>\d+)", self.delete_comment),
            ("PATCH", r"/issues/(?P<number>\d+)", self.update_issue),
            ("POST", r"/issues/(?P<number>\d+)/labels", self.add_labels),
            ("POST", r"/issues/(?P<number>\d+)/assignees", self.add_assignees),
            ("GET", r"/pulls", self.list_pulls),
            ("POST", r"/pulls", self.create_pull),
            ("GET", r"/pulls/(?P<number>\d+)", self.get_pull),
            ("PATCH", r"/pulls/(?P<number>\d+)", self.update_pull),
            ("POST", r"/pulls/(?P<number>\d+)/requested_reviewers", self.request_reviewers),
            ("GET", r"/actions/workflows/(?P<workflow>[^/]+)/runs", self.list_workflow_runs),
            ("PUT", r"/actions/workflows/(?P<workflow>[^/]+)/enable", self.enable_workflow),
        ]
        return [(method, re.compile(f"{repo}{pattern}"), handler) for method, pattern, handler in table]

    def _dispatch(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, authorization: str | None
    ) -> tuple[int, Any, dict[str, str], str | None]:
        """(status, JSON answer, extra headers, matched route) for one request below /api/v3."""
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if route_method != method or not match:
                continue
            params = match.groupdict()
            if f"{params.pop('owner')}/{params.pop('repo')}" != self.repository:
                break  # another repository: nothing here knows it
            headers: dict[str, str] = {}
            try:
                login = self.tokens.get(_token_of(authorization) or "")
                if login is None:
                    raise ApiError(401, "Bad credentials")
                if body is not None and not isinstance(body, dict):
                    raise ApiError(400, "Problems parsing JSON")
                status, answer = handler(login=login, query=query, body=body or {}, headers=headers, **params)
            except ApiError as error:
                status, answer = error.status, {"message": error.message, "documentation_url": DOCS_URL}
                answer |= {"status": str(error.status)} | ({"errors": error.errors} if error.errors else {})
            except Exception as error:  # a stand-in bug: answered and recorded, not a dropped connection
                status, answer = 500, {"message": f"stand-in error: {error!r}", "status": "500"}
            return status, answer, headers, handler.__name__
        return 404, {"message": "Not Found", "documentation_url": DOCS_URL, "status": "404"}, {}, None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path, query = url.path.removeprefix(API_PREFIX), parse_qs(url.query)
                authorization = self.headers.get("Authorization")
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")  # answered 400 by _dispatch
                with outer.lock:
                    if url.path.startswith(f"{API_PREFIX}/"):
                        status, answer, headers, route = outer._dispatch(
                            self.command, path, query, body, authorization
                        )
                    else:
                        status, answer, headers, route = 404, {"message": "Not Found"}, {}, None
                    outer.requests.append(
                        RecordedRequest(self.command, path, query, body, authorization, status, route)
                    )
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        return Handler

    # --- helpers --------------------------------------------------------------------------------------------
    def _page(self, items: list, query: dict[str, list[str]], path: str, headers: dict[str, str]) -> list:
        """GitHub's pagination: per_page (default 30, at most 100), page (from 1), and a Link header."""
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        last = max(1, -(-len(items) // per_page))
        links = []
        for rel, number in (("next", page + 1), ("last", last)):
            if page < last:
                flat = {key: values[0] for key, values in query.items()} | {"per_page": per_page}
                flat["page"] = number
                links.append(f'<{self.api_url}{path}?{urlencode(flat)}>; rel="{rel}"')
        if links:
            headers["Link"] = ", ".join(links)
        return items[(page - 1) * per_page : page * per_page]

    def _user(self, login: str) -> dict[str, Any]:
        return {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"}

    def _issue(self, number: str) -> dict[str, Any]:
        pull = self.pulls.get(int(number))
        if pull is None:
            raise ApiError(404, "Not Found")
        return pull

    def _git(self, *args: str) -> str | None:
        if self.origin is None:
            return None
        done = subprocess.run(["git", "--git-dir", str(self.origin), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    def _new_pull(self, body: dict[str, Any], login: str, validate: bool) -> dict[str, Any]:
        """A new open pull request; ``validate``: GitHub's checks of the branches (in ``origin``) first."""
        head, base = str(body.get("head") or ""), str(body.get("base") or "")
        if not body.get("title") or not head or not base:
            raise _invalid_pull(code="missing_field")
        owner = self.repository.split("/")[0]
        branch = head.split(":", 1)[1] if ":" in head else head
        label = f"{owner}:{branch}"
        for pull in self.pulls.values():
            if pull["state"] == "open" and pull["head"]["label"] == label and pull["base"]["ref"] == base:
                raise _invalid_pull(code="custom", message=f"A pull request already exists for {label}.")
        head_sha = self._git("rev-parse", f"refs/heads/{branch}")
        base_sha = self._git("rev-parse", f"refs/heads/{base}")
        if validate and self.origin is not None:
            for field, sha in (("head", head_sha), ("base", base_sha)):
                if sha is None:
                    raise _invalid_pull(field=field, code="invalid")
            if self._git("rev-list", "--count", f"{base_sha}..{head_sha}") == "0":
                raise _invalid_pull(code="custom", message=f"No commits between {base} and {branch}")
        number = next(self._numbers)
        full = self.repository
        pull = {
            "number": number,
            "node_id": f"PR_{number}",
            "html_url": f"{self.url}/{full}/pull/{number}",
            "state": "open",
            "draft": bool(body.get("draft", False)),
            "title": body["title"],
            "body": body.get("body") or "",
            "user": self._user(login),
            "head": {"ref": branch, "label": label, "sha": head_sha, "repo": {"full_name": full}},
            "base": {"ref": base, "label": f"{owner}:{base}", "sha": base_sha, "repo": {"full_name": full}},
            "maintainer_can_modify": bool(body.get("maintainer_can_modify", True)),
            "labels": [],
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "milestone": None,
            "merged": False,
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.pulls[number] = pull
        return pull

    # --- endpoints (called with the lock held) --------------------------------------------------------------
    def get_repository(self, **_: Any) -> tuple[int, Any]:
        owner, name = self.repository.split("/")
        return 200, {
            "full_name": self.repository,
            "name": name,
            "owner": {"login": owner},
            "private": True,
            "fork": False,
            "default_branch": "main",
            "html_url": f"{self.url}/{self.repository}",
        }

    def list_comments(self, number: str, query: dict, headers: dict, **_: Any) -> tuple[int, Any]:
        self._issue(number)
        path = f"/repos/{self.repository}/issues/{number}/comments"
        return 200, self._page(self.comments_on(int(number)), query, path, headers)

    def create_comment(self, number: str, body: Any, login: str, **_: Any) -> tuple[int, Any]:
        self._issue(number)
        if not isinstance(body.get("body"), str):
            raise ApiError(422, NO_BODY)
        comment_id = next(self._ids)
        comment = {
            "id": comment_id,
            "node_id": f"IC_{comment_id}",
            "issue_number": int(number),
            "html_url": f"{self.url}/{self.repository}/pull/{number}#issuecomment-{comment_id}",
            "body": body["body"],
            "user": self._user(login),
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.comments[comment_id] = comment
        return 201, comment

    def _comment(self, comment_id: str) -> dict[str, Any]:
        comment = self.comments.get(int(comment_id))
        if comment is None:
            raise ApiError(404, "Not Found")
        return comment

    def get_comment(self, comment_id: str, **_: Any) -> tuple[int, Any]:
        return 200, self._comment(comment_id)

    def update_comment(self, comment_id: str, body: Any, **_: Any) -> tuple[int, Any]:
        comment = self._comment(comment_id)
        if not isinstance(body.get("body"), str):
            raise ApiError(422, NO_BODY)
        comment.update(body=body["body"], updated_at=_now())
        return 200, comment

    def delete_comment(self, comment_id: str, **_: Any) -> tuple[int, Any]:
        del self.comments[self._comment(comment_id)["id"]]
        return 204, None

    def update_issue(self, number: str, body: dict, **_: Any) -> tuple[int, Any]:
        pull = self._issue(number)
        for key in ("title", "body", "state", "milestone"):
            if key in body:
                pull[key] = body[key]
        if "labels" in body:
            pull["labels"] = [{"name": name} for name in body["labels"]]
        if "assignees" in body:
            pull["assignees"] = [self._user(login) for login in body["assignees"]]
        pull["updated_at"] = _now()
        return 200, pull

    def add_labels(self, number: str, body: dict, **_: Any) -> tuple[int, Any]:
        pull = self._issue(number)
        names = [label["name"] for label in pull["labels"]]
        pull["labels"] += [{"name": name} for name in body.get("labels", []) if name not in names]
        return 200, pull["labels"]

    def add_assignees(self, number: str, body: dict, **_: Any) -> tuple[int, Any]:
        pull = self._issue(number)
        pull["assignees"] += [self._user(login) for login in body.get("assignees", [])]
        return 201, pull

    def list_pulls(self, query: dict, headers: dict, **_: Any) -> tuple[int, Any]:
        state = query.get("state", ["open"])[0]
        head, base = query.get("head", [None])[0], query.get("base", [None])[0]
        found = [
            pull
            for pull in self.pulls.values()
            if state in {"all", pull["state"]}
            and head in {None, pull["head"]["label"]}
            and base in {None, pull["base"]["ref"]}
        ]
        return 200, self._page(found, query, f"/repos/{self.repository}/pulls", headers)

    def create_pull(self, body: Any, login: str, **_: Any) -> tuple[int, Any]:
        if login == ACTIONS_LOGIN and not self.allow_actions_pull_requests:
            raise ApiError(403, ACTIONS_PR_FORBIDDEN)
        return 201, self._new_pull(body, login=login, validate=True)

    def get_pull(self, number: str, **_: Any) -> tuple[int, Any]:
        return 200, self._issue(number)

    def update_pull(self, number: str, body: dict, **_: Any) -> tuple[int, Any]:
        pull = self._issue(number)
        for key in ("title", "body", "state"):
            if key in body:
                pull[key] = body[key]
        if "base" in body:
            pull["base"]["ref"] = body["base"]
        pull["updated_at"] = _now()
        return 200, pull

    def request_reviewers(self, number: str, body: dict, **_: Any) -> tuple[int, Any]:
        pull = self._issue(number)
        pull["requested_reviewers"] += [self._user(login) for login in body.get("reviewers", [])]
        pull["requested_teams"] += [{"slug": slug} for slug in body.get("team_reviewers", [])]
        return 201, pull

    def list_workflow_runs(self, workflow: str, query: dict, headers: dict, **_: Any) -> tuple[int, Any]:
        def wanted(run: dict[str, Any]) -> bool:
            status = query.get("status", [None])[0]
            return (
                run["path"] == f".github/workflows/{workflow}"
                and query.get("head_sha", [run["head_sha"]])[0] == run["head_sha"]
                and query.get("branch", [run["head_branch"]])[0] == run["head_branch"]
                and query.get("event", [run["event"]])[0] == run["event"]
                and status in {None, run["conclusion"] if status in CONCLUSIONS else run["status"]}
            )

        found = [run for run in reversed(self.workflow_runs) if wanted(run)]  # newest first, like GitHub
        path = f"/repos/{self.repository}/actions/workflows/{workflow}/runs"
        return 200, {"total_count": len(found), "workflow_runs": self._page(found, query, path, headers)}

    def enable_workflow(self, workflow: str, **_: Any) -> tuple[int, Any]:
        self.enabled_workflows.append(workflow)
        return 204, None
