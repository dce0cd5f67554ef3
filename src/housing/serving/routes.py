"""The server's one route table: it drives dispatch, the 405 ``Allow`` header and the OpenAPI document.

A :class:`Route` names its method, its path (an OpenAPI template such as ``/v2/models/{model_name}/infer``),
the handler that answers it (by operation id; the app binds them), its protocol, and what the document says
about it (summary, body models by name, error statuses). :class:`RouteTable` compiles the paths: exact paths
are one dict lookup, templated ones a regular expression each, tried in table order (the hot routes first).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

OPENAPI_PATH = "/openapi.json"
_PARAMETER = re.compile(r"\{(\w+)\}")


class Protocol(StrEnum):
    V1 = "v1"  # KServe V1
    V2 = "v2"  # Open Inference Protocol
    FEEDBACK = "feedback"  # ground truth for earlier predictions
    OPS = "ops"  # metrics and this document


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI path template; {model_name} and {model_version} are one path segment each
    operation: str  # operationId, and the name of the handler the app binds to it (unless ``handler``)
    protocol: Protocol
    summary: str
    request: str | None = None  # request body model (housing.serving.bodies), None: no body
    response: str | None = None  # 2xx body model; None: not JSON (see openapi.py)
    status: int = 200
    errors: tuple[int, ...] = ()
    predicts: bool = False  # a predict/infer route: request id, routing and model-version headers
    binary_tensors: bool = False  # bodies may use the Open Inference Protocol's binary tensor extension
    bearer_auth: bool = False  # needs Authorization: Bearer <token> (feedback_auth.py)

    handler: str = ""  # the handler's name when it is not the operation id (one model version's routes)

    @property
    def handler_name(self) -> str:
        return self.handler or self.operation


def _one_version(route: Route) -> Route:
    """The same V2 route for one model version: ``/v2/models/{model_name}/versions/{model_version}...``."""
    return replace(
        route,
        path=route.path.replace("{model_name}", "{model_name}/versions/{model_version}", 1),
        operation=f"{route.operation}_version",
        summary=f"{route.summary}, one model version",
        handler=route.handler_name,
    )


_PREDICT_ERRORS = (400, 404, 413, 500)
_V2_INFER = Route(
    "POST",
    "/v2/models/{model_name}/infer",
    "v2_infer",
    Protocol.V2,
    "Open Inference Protocol inference",
    request="InferenceRequest",
    response="InferenceResponse",
    errors=_PREDICT_ERRORS,
    predicts=True,
    binary_tensors=True,
)
_V2_MODEL = Route(
    "GET",
    "/v2/models/{model_name}",
    "v2_model_metadata",
    Protocol.V2,
    "Model metadata",
    response="ModelMetadata",
    errors=(404,),
)
_V2_MODEL_READY = Route(
    "GET",
    "/v2/models/{model_name}/ready",
    "v2_model_ready",
    Protocol.V2,
    "Model ready",
    response="ModelReady",
    errors=(404, 503),
)

# Predict/infer first: the table is matched in order, and these carry the traffic.
ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/models/{model_name}:predict",
        "v1_predict",
        Protocol.V1,
        "KServe V1 predict",
        request="V1Request",
        response="V1Response",
        errors=_PREDICT_ERRORS,
        predicts=True,
    ),
    _V2_INFER,
    _one_version(_V2_INFER),
    Route(
        "POST",
        "/v1/feedback",
        "feedback",
        Protocol.FEEDBACK,
        "Ground truth for an earlier prediction (by its feedback token or request id)",
        request="Feedback",
        response="FeedbackAccepted",
        status=202,
        errors=(400, 401, 404, 413),
        bearer_auth=True,
    ),
    Route("GET", "/", "v1_live", Protocol.V1, "KServe V1 liveness", response="Alive"),
    Route("GET", "/v1/models", "v1_models", Protocol.V1, "List models", response="ModelList"),
    Route(
        "GET",
        "/v1/models/{model_name}",
        "v1_model_ready",
        Protocol.V1,
        "KServe V1 model ready",
        response="ModelReady",
        errors=(404, 503),
    ),
    Route("GET", "/v2/health/live", "v2_live", Protocol.V2, "Server live", response="Live"),
    Route(
        "GET", "/v2/health/ready", "v2_ready", Protocol.V2, "Server ready", response="Ready", errors=(503,)
    ),
    Route("GET", "/v2", "v2_server_metadata", Protocol.V2, "Server metadata", response="ServerMetadata"),
    _V2_MODEL,
    _V2_MODEL_READY,
    _one_version(_V2_MODEL),
    _one_version(_V2_MODEL_READY),
    Route("GET", "/metrics", "metrics", Protocol.OPS, "Prometheus metrics"),
    Route("GET", OPENAPI_PATH, "openapi", Protocol.OPS, "This document"),
)


def path_parameters(path: str) -> list[str]:
    """The ``{name}`` parameters of a path template, in order."""
    return _PARAMETER.findall(path)


def _regex(path: str) -> re.Pattern[str]:
    pattern = "".join(
        f"(?P<{part[1:-1]}>[^/]+?)" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{\w+\})", path)
        if part
    )
    return re.compile(f"^{pattern}$")


Handler = Callable[..., Any]
Methods = dict[str, Handler]  # method -> handler, for one path


class RouteTable:
    """Path -> {method: handler} and the path's parameters; :meth:`allow` lists a path's methods (405)."""

    def __init__(self, routes: Iterable[Route], handlers: dict[str, Handler]) -> None:
        self.routes = tuple(routes)
        missing = {route.handler_name for route in self.routes} - set(handlers)
        if missing:
            raise ValueError(f"routes without a handler: {sorted(missing)}")
        self._exact: dict[str, Methods] = {}
        templated: dict[str, Methods] = {}
        for route in self.routes:
            table = templated if "{" in route.path else self._exact
            table.setdefault(route.path, {})[route.method] = handlers[route.handler_name]
        self._templated = [(_regex(path).match, methods) for path, methods in templated.items()]

    def resolve(self, path: str) -> tuple[Methods, dict[str, str]] | None:
        """The handlers of the first route whose path matches, and the path's parameters; None: no route."""
        methods = self._exact.get(path)
        if methods is not None:
            return methods, {}
        for match, methods in self._templated:
            found = match(path)
            if found is not None:
                return methods, found.groupdict()
        return None

    @staticmethod
    def allow(methods: Methods) -> str:
        """The ``Allow`` header of a resolved path."""
        return ", ".join(sorted(methods))
