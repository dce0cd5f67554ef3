"""The OpenAPI 3.0 document at ``/openapi.json``, generated from the route table and the body models.

Paths and operations come from :data:`housing.serving.routes.ROUTES` (the table that also dispatches), schemas
from the pydantic models of :mod:`housing.serving.bodies` (the served model's feature names and valid
ranges included), so a route or a bound cannot be documented differently from what the server does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from housing.serving.bodies import STATIC_MODELS, component_schemas, request_models
from housing.serving.routes import Route, path_parameters
from housing.serving.schema import MAX_REQUEST_ID_CHARS, FeatureSchema
from housing.variants import Variant

_ERRORS = {
    400: "Invalid request (the message names the field and the rule)",
    401: "Missing or wrong bearer token (or the server has none: it then accepts no feedback)",
    404: "Unknown model or version",
    413: "Body or batch over the configured limit",
    500: "Inference failed (or an injected fault, when fault injection is on)",
    503: "Not ready",
}
_BINARY_BODY = {"schema": {"type": "string", "format": "binary"}}
BEARER_SCHEME = "feedbackToken"
_BINARY_NOTE = (
    "Binary tensor extension: the JSON object followed by raw little-endian tensor bytes, with "
    "Inference-Header-Content-Length giving the JSON's length."
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _header(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema}


def _parameters(route: Route, model_names: list[str], versions: list[str]) -> list[dict[str, Any]]:
    enums = {"model_name": model_names, "model_version": versions}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "enum": enums[name]}}
        for name in path_parameters(route.path)
    ]
    if route.predicts:
        parameters.append(
            _header(
                "X-Request-Id",
                "Echoed back (generated when absent); use it for POST /v1/feedback.",
                {"type": "string", "maxLength": MAX_REQUEST_ID_CHARS},
            )
        )
        parameters.append(
            _header(
                "X-Routing-Key",
                "A/B split mode: hashed to pick the variant (the same key, the same variant).",
                {"type": "string"},
            )
        )
    if route.binary_tensors:
        parameters.append(
            _header("Inference-Header-Content-Length", _BINARY_NOTE, {"type": "integer", "minimum": 0})
        )
    return parameters


def _success(route: Route) -> dict[str, Any]:
    if route.response is None:  # not a JSON body model: the metrics text or this document
        media = "text/plain" if route.operation == "metrics" else "application/json"
        schema = {"type": "string"} if media == "text/plain" else {"type": "object"}
        return {"description": route.summary, "content": {media: {"schema": schema}}}
    success = _json(_ref(route.response), route.summary)
    if route.predicts:
        success["headers"] = {
            "X-Request-Id": {"schema": {"type": "string"}, "description": "The request id"},
            "X-Model-Version": {"schema": {"type": "string"}, "description": "Model version that answered"},
            "X-Model-Variant": {
                "schema": {"type": "string", "enum": [v.value for v in Variant]},
                "description": "Variant that answered",
            },
            "X-Feedback-Token": {
                "schema": {"type": "string"},
                "description": "Signed prediction for POST /v1/feedback (any replica scores it); absent "
                "past --feedback-token-max-rows rows",
            },
        }
    if route.binary_tensors:
        success["content"]["application/octet-stream"] = _BINARY_BODY
        success["headers"]["Inference-Header-Content-Length"] = {
            "schema": {"type": "integer"},
            "description": "Binary outputs only: " + _BINARY_NOTE,
        }
    return success


def _operation(route: Route, model_names: list[str], versions: list[str]) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": route.summary, "operationId": route.operation}
    parameters = _parameters(route, model_names, versions)
    if parameters:
        operation["parameters"] = parameters
    if route.request is not None:
        content: dict[str, Any] = {"application/json": {"schema": _ref(route.request)}}
        if route.binary_tensors:
            content["application/octet-stream"] = {**_BINARY_BODY}
        operation["requestBody"] = {"required": True, "content": content}
    if route.bearer_auth:
        operation["security"] = [{BEARER_SCHEME: []}]
    operation["responses"] = {
        str(route.status): _success(route),
        **{str(status): _json(_ref("Error"), _ERRORS[status]) for status in route.errors},
    }
    return operation


def build_openapi(
    routes: Sequence[Route],
    *,
    model_names: list[str],
    versions: list[str],
    schema: FeatureSchema,
    output_name: str,
    server_version: str,
) -> dict[str, Any]:
    """The document for one server: its routes, its model name and versions, its model's inputs."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, model_names, versions)
    models = [*STATIC_MODELS, *request_models(schema, output_name).values()]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "housing model server",
            "version": server_version,
            "description": "KServe V1 and Open Inference Protocol (V2) REST routes, with the binary tensor "
            'extension; ground-truth feedback; Prometheus metrics. Errors are {"error": message}.',
        },
        "paths": paths,
        "components": {
            "schemas": component_schemas(models),
            "securitySchemes": {
                BEARER_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The feedback token the labelling pipeline holds (--feedback-token-file)",
                }
            },
        },
    }
