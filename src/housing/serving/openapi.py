"""The OpenAPI 3.0 document of the server's routes (at ``/openapi.json``), built from the model schema."""

from __future__ import annotations

from typing import Any

from housing.serving.schema import MAX_REQUEST_ID_CHARS, V2_DATATYPES

OPENAPI_PATH = "/openapi.json"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Invalid request (the message names the field and the rule)",
        404: "Unknown model or version",
        413: "Body or batch over the configured limit",
        500: "Inference failed (or an injected fault, when fault injection is on)",
        503: "Not ready",
    }
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


def build_openapi(
    *,
    model_names: list[str],
    versions: list[str],
    features: list[dict[str, Any]],
    output_name: str,
    max_batch: int,
    server_version: str,
) -> dict[str, Any]:
    """``features``: [{"name", "min", "max"}] in model input order."""
    names = [f["name"] for f in features]
    model_param = {
        "name": "model_name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": model_names},
    }
    version_param = {
        "name": "model_version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": versions},
    }
    request_id_header = {
        "name": "X-Request-Id",
        "in": "header",
        "required": False,
        "description": "Echoed back (generated when absent); use it for POST /v1/feedback.",
        "schema": {"type": "string", "maxLength": MAX_REQUEST_ID_CHARS},
    }
    predict_headers = {
        "X-Request-Id": {"schema": {"type": "string"}, "description": "The request id"},
        "X-Model-Version": {"schema": {"type": "string"}, "description": "Model version that answered"},
        "X-Model-Variant": {
            "schema": {"type": "string", "enum": ["champion", "challenger"]},
            "description": "Variant that answered",
        },
    }
    number_row = {
        "type": "array",
        "items": {"type": "number"},
        "minItems": len(names),
        "maxItems": len(names),
        "description": f"Raw feature values in this order: {', '.join(names)}",
    }
    named_row = {
        "type": "object",
        "required": names,
        "additionalProperties": False,
        "properties": {
            f["name"]: {"type": "number", "minimum": f["min"], "maximum": f["max"]} for f in features
        },
    }
    infer_ops = {
        "post": {
            "summary": "Open Inference Protocol inference",
            "operationId": "v2_infer",
            "parameters": [model_param, request_id_header],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("InferenceRequest")}},
            },
            "responses": {
                "200": {**_json(_ref("InferenceResponse"), "Predictions"), "headers": predict_headers},
                **_errors(400, 404, 413, 500),
            },
        }
    }
    model_metadata_op = {
        "get": {
            "summary": "Model metadata",
            "operationId": "v2_model_metadata",
            "parameters": [model_param],
            "responses": {"200": _json(_ref("ModelMetadata"), "Model metadata"), **_errors(404)},
        }
    }
    model_ready_op = {
        "get": {
            "summary": "Model ready",
            "operationId": "v2_model_ready",
            "parameters": [model_param],
            "responses": {"200": _json(_ref("ModelReady"), "Ready"), **_errors(404, 503)},
        }
    }

    def with_version(ops: dict[str, Any], suffix: str) -> dict[str, Any]:
        method, op = next(iter(ops.items()))
        return {
            method: {
                **op,
                "operationId": op["operationId"] + suffix,
                "parameters": [*op["parameters"], version_param],
            }
        }

    tensor_data = {"type": "array", "items": {}, "description": "Row-major values, flat or nested"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "housing model server",
            "version": server_version,
            "description": "KServe V1 and Open Inference Protocol (V2) REST routes, ground-truth feedback, "
            'Prometheus metrics. Errors are {"error": message}.',
        },
        "paths": {
            "/": {
                "get": {
                    "summary": "KServe V1 liveness",
                    "operationId": "v1_live",
                    "responses": {"200": _json(_ref("Alive"), "Alive")},
                }
            },
            "/v1/models": {
                "get": {
                    "summary": "List models",
                    "operationId": "v1_models",
                    "responses": {"200": _json(_ref("ModelList"), "Served models")},
                }
            },
            "/v1/models/{model_name}": {
                "get": {
                    "summary": "KServe V1 model ready",
                    "operationId": "v1_model_ready",
                    "parameters": [model_param],
                    "responses": {"200": _json(_ref("ModelReady"), "Ready"), **_errors(404, 503)},
                }
            },
            "/v1/models/{model_name}:predict": {
                "post": {
                    "summary": "KServe V1 predict",
                    "operationId": "v1_predict",
                    "parameters": [model_param, request_id_header],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("V1Request")}},
                    },
                    "responses": {
                        "200": {**_json(_ref("V1Response"), "Predictions"), "headers": predict_headers},
                        **_errors(400, 404, 413, 500),
                    },
                }
            },
            "/v1/feedback": {
                "post": {
                    "summary": "Ground truth for an earlier prediction (by its request id)",
                    "operationId": "feedback",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("Feedback")}},
                    },
                    "responses": {
                        "202": _json(_ref("FeedbackAccepted"), "Accepted"),
                        **_errors(400, 404, 413),
                    },
                }
            },
            "/v2/health/live": {
                "get": {
                    "summary": "Server live",
                    "operationId": "v2_live",
                    "responses": {"200": _json(_ref("Live"), "Live")},
                }
            },
            "/v2/health/ready": {
                "get": {
                    "summary": "Server ready",
                    "operationId": "v2_ready",
                    "responses": {"200": _json(_ref("Ready"), "Ready"), **_errors(503)},
                }
            },
            "/v2": {
                "get": {
                    "summary": "Server metadata",
                    "operationId": "v2_server_metadata",
                    "responses": {"200": _json(_ref("ServerMetadata"), "Server metadata")},
                }
            },
            "/v2/models/{model_name}": model_metadata_op,
            "/v2/models/{model_name}/ready": model_ready_op,
            "/v2/models/{model_name}/infer": infer_ops,
            "/v2/models/{model_name}/versions/{model_version}": with_version(model_metadata_op, "_version"),
            "/v2/models/{model_name}/versions/{model_version}/ready": with_version(
                model_ready_op, "_version"
            ),
            "/v2/models/{model_name}/versions/{model_version}/infer": with_version(infer_ops, "_version"),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            OPENAPI_PATH: {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI document")},
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "Alive": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string"}},
                },
                "Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
                "Ready": {
                    "type": "object",
                    "required": ["ready"],
                    "properties": {"ready": {"type": "boolean"}},
                },
                "ModelList": {
                    "type": "object",
                    "required": ["models"],
                    "properties": {"models": {"type": "array", "items": {"type": "string"}}},
                },
                "ModelReady": {
                    "type": "object",
                    "required": ["name", "ready"],
                    "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
                },
                "V1Request": {
                    "type": "object",
                    "required": ["instances"],
                    "properties": {
                        "instances": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": max_batch,
                            "items": {"oneOf": [number_row, named_row]},
                        }
                    },
                },
                "V1Response": {
                    "type": "object",
                    "required": ["predictions"],
                    "properties": {"predictions": {"type": "array", "items": {"type": "number"}}},
                },
                "Feedback": {
                    "type": "object",
                    "required": ["request_id"],
                    "properties": {
                        "request_id": {"type": "string", "minLength": 1, "maxLength": MAX_REQUEST_ID_CHARS},
                        "actual": {"type": "number", "description": "For a single-instance request"},
                        "actuals": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "number"},
                            "description": "One per instance of the request",
                        },
                    },
                },
                "FeedbackAccepted": {
                    "type": "object",
                    "required": ["accepted"],
                    "properties": {"accepted": {"type": "integer"}},
                },
                "ServerMetadata": {
                    "type": "object",
                    "required": ["name", "version", "extensions"],
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "extensions": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "MetadataTensor": {
                    "type": "object",
                    "required": ["name", "datatype", "shape"],
                    "properties": {
                        "name": {"type": "string"},
                        "datatype": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                    },
                },
                "ModelMetadata": {
                    "type": "object",
                    "required": ["name", "platform", "inputs", "outputs"],
                    "properties": {
                        "name": {"type": "string"},
                        "versions": {"type": "array", "items": {"type": "string"}},
                        "platform": {"type": "string"},
                        "inputs": {"type": "array", "items": _ref("MetadataTensor")},
                        "outputs": {"type": "array", "items": _ref("MetadataTensor")},
                    },
                },
                "RequestInput": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {
                            "type": "string",
                            "description": f"'input' ([n, {len(names)}]) or a feature name ([n])",
                        },
                        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "datatype": {"type": "string", "enum": list(V2_DATATYPES)},
                        "parameters": {"type": "object"},
                        "data": tensor_data,
                    },
                },
                "RequestOutput": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "enum": [output_name]},
                        "parameters": {"type": "object"},
                    },
                },
                "InferenceRequest": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "minItems": 1, "items": _ref("RequestInput")},
                        "outputs": {"type": "array", "items": _ref("RequestOutput")},
                    },
                },
                "ResponseOutput": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "datatype": {"type": "string"},
                        "parameters": {"type": "object"},
                        "data": {"type": "array", "items": {"type": "number"}},
                    },
                },
                "InferenceResponse": {
                    "type": "object",
                    "required": ["model_name", "outputs"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "outputs": {"type": "array", "items": _ref("ResponseOutput")},
                    },
                },
            }
        },
    }
