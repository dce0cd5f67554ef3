"""Model server: KServe V1 + Open Inference Protocol (V2) routes over the ONNX artifact (docs/serving.md).

Module map: ``cli`` -> ``settings`` (ServeSettings) -> ``server`` (build the app, run uvicorn over
``transport``) -> ``app`` (ASGI, dispatch by ``routes``) -> ``v1`` / ``v2`` / ``feedback_route`` (handlers;
``binary`` for the binary tensor extension) -> ``core`` (the prediction path: ``router``, ``model``,
``batching``, ``metrics``, ``feedback``, the inference log), with ``schema`` validating requests and ``http``
the ASGI plumbing; ``bodies`` + ``openapi`` generate the OpenAPI document.
"""
