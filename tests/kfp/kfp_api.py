"""A stand-in for the Kubeflow Pipelines v2beta1 REST API on 127.0.0.1: the routes ``kfp.Client`` calls to
upload a pipeline (and its versions), find or create an experiment, start a run and replace a recurring run.
It keeps their state in memory and records every request (method, path, query, body) for the tests to inspect.

Answers carry the fields of the API's JSON as ``kfp_server_api`` reads them (snake_case, except
``recurringRuns``); a filter on ``display_name`` (what the client sends to find things by name) is honoured.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loopback import LoopbackServer, QuietHandler

PREFIX = "/apis/v2beta1"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # below /apis/v2beta1
    query: dict[str, str]
    body: bytes
    authorization: str | None

    def json(self) -> Any:
        return json.loads(self.body)


def _named(items: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """Items matching the request's display_name EQUALS filter (all of them without a filter)."""
    if "filter" not in query:
        return items
    (predicate,) = json.loads(query["filter"])["predicates"]
    assert predicate["key"] == "display_name", predicate
    return [item for item in items if item["display_name"] == predicate["stringValue"]]


class KfpApi:
    """The stand-in; ``url`` is the host to give ``kfp.Client``. ``refuse`` maps a route name to an HTTP
    status it answers instead (to test how errors surface)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.pipelines: list[dict[str, Any]] = []
        self.versions: list[dict[str, Any]] = []
        self.experiments: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self.recurring_runs: list[dict[str, Any]] = []
        self.refuse: dict[str, int] = {}
        self.lock = threading.Lock()
        self._server = LoopbackServer(self._handler())
        self.url = self._server.url
        self._routes = [
            ("GET", r"/healthz", self.healthz),
            ("GET", r"/pipelines", self.list_pipelines),
            ("POST", r"/pipelines/upload", self.upload_pipeline),
            ("GET", r"/pipelines/(?P<pipeline_id>[^/]+)/versions", self.list_versions),
            ("POST", r"/pipelines/upload_version", self.upload_version),
            ("GET", r"/experiments", self.list_experiments),
            ("POST", r"/experiments", self.create_experiment),
            ("POST", r"/runs", self.create_run),
            ("GET", r"/recurringruns", self.list_recurring_runs),
            ("POST", r"/recurringruns", self.create_recurring_run),
            ("DELETE", r"/recurringruns/(?P<job_id>[^/]+)", self.delete_recurring_run),
        ]

    def __enter__(self) -> KfpApi:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()

    def routes_called(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    # --- routes ---------------------------------------------------------------------------------------------
    def healthz(self, request: Request) -> dict[str, Any]:
        return {"multi_user": False}

    def list_pipelines(self, request: Request) -> dict[str, Any]:
        return {"pipelines": _named(self.pipelines, request.query)}

    def _new_version(self, pipeline_id: str, name: str) -> dict[str, Any]:
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": f"version-{len(self.versions) + 1}",
            "display_name": name,
        }
        self.versions.append(version)
        return version

    def upload_pipeline(self, request: Request) -> dict[str, Any]:
        pipeline = {
            "pipeline_id": f"pipeline-{len(self.pipelines) + 1}",
            "display_name": request.query["name"],
        }
        self.pipelines.append(pipeline)
        self._new_version(pipeline["pipeline_id"], request.query["name"])  # the server's first version
        return pipeline

    def list_versions(self, request: Request, pipeline_id: str) -> dict[str, Any]:
        mine = [v for v in self.versions if v["pipeline_id"] == pipeline_id]
        return {"pipeline_versions": _named(mine, request.query)}

    def upload_version(self, request: Request) -> dict[str, Any]:
        return self._new_version(request.query["pipelineid"], request.query["name"])

    def list_experiments(self, request: Request) -> dict[str, Any]:
        return {"experiments": _named(self.experiments, request.query)}

    def create_experiment(self, request: Request) -> dict[str, Any]:
        experiment = {"experiment_id": f"experiment-{len(self.experiments) + 1}", **request.json()}
        self.experiments.append(experiment)
        return experiment

    def create_run(self, request: Request) -> dict[str, Any]:
        run = {**request.json(), "run_id": f"run-{len(self.runs) + 1}", "state": "PENDING"}
        self.runs.append(run)
        return run

    def list_recurring_runs(self, request: Request) -> dict[str, Any]:
        mine = [j for j in self.recurring_runs if j["experiment_id"] == request.query.get("experiment_id")]
        return {"recurringRuns": _named(mine, request.query)}  # camelCase: the API's proto names it so

    def create_recurring_run(self, request: Request) -> dict[str, Any]:
        job = {**request.json(), "recurring_run_id": f"recurring-{len(self.requests)}", "status": "ENABLED"}
        self.recurring_runs.append(job)
        return job

    def delete_recurring_run(self, request: Request, job_id: str) -> dict[str, Any]:
        self.recurring_runs = [j for j in self.recurring_runs if j["recurring_run_id"] != job_id]
        return {}

    # --- plumbing -------------------------------------------------------------------------------------------
    def _answer(self, request: Request) -> tuple[int, Any]:
        for method, pattern, route in self._routes:
            match = re.fullmatch(pattern, request.path)
            if method == request.method and match:
                if route.__name__ in self.refuse:
                    status = self.refuse[route.__name__]
                    return status, {"error_message": f"refused by the stand-in ({status})", "code": 7}
                return 200, route(request, **match.groupdict())
        return 404, {"error_message": f"no route {request.method} {request.path}", "code": 5}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                request = Request(
                    self.command,
                    url.path.removeprefix(PREFIX),
                    query,
                    body,
                    self.headers.get("Authorization"),
                )
                with api.lock:
                    api.requests.append(request)
                    status, answer = api._answer(request)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        return Handler
