"""Open Inference Protocol (KServe V2): health, server and model metadata, readiness and inference, with the
binary tensor extension (:mod:`housing.serving.binary`) in both directions."""

from __future__ import annotations

import time

import orjson

from housing.serving import binary, http
from housing.serving.core import ServingCore
from housing.serving.http import Receive, Scope, Send
from housing.serving.schema import RequestError, valid_request_id

SERVER_NAME = "housing-model-server"
_LIVE = b'{"live":true}'


class V2:
    def __init__(self, core: ServingCore, request_ids: http.RequestIds, server_version: str) -> None:
        self.core = core
        self._request_ids = request_ids
        self._server_metadata = orjson.dumps(
            {"name": SERVER_NAME, "version": server_version, "extensions": [binary.EXTENSION]}
        )

    async def live(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        await http.send_bytes(send, 200, _LIVE)

    async def ready(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        ready = self.core.ready()
        await http.send_json(send, 200 if ready else 503, {"ready": ready})

    async def server_metadata(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        await http.send_bytes(send, 200, self._server_metadata)

    async def model_metadata(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        try:
            handle = self.core.known(params["model_name"], params.get("model_version"))
        except RequestError as exc:
            await http.send_json(send, exc.status, {"error": str(exc)})
            return
        await http.send_json(send, 200, handle.v2_metadata())

    async def infer(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:
        metrics = self.core.metrics
        metrics.in_flight_requests += 1
        try:
            await self._infer(scope, receive, send, params["model_name"], params.get("model_version"))
        finally:
            metrics.in_flight_requests -= 1

    async def _infer(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> None:
        started = time.perf_counter()
        core = self.core
        headers = http.request_headers(scope)
        header_id = http.header_request_id(headers)
        request_id = header_id or ""
        handle = None
        try:
            named = core.known(name, version)  # 404 before the body is read
            body = await http.read_body(headers, receive, core.settings.max_body_bytes)
            json_length = headers.get(binary.HEADER)
            tensors = None
            if json_length is not None:
                body, tensors = binary.split_request(body, json_length)
            payload = http.loads(body)
            if header_id is None:  # without an X-Request-Id header the V2 "id" names the request
                body_id = payload.get("id") if type(payload) is dict else None
                request_id = body_id if valid_request_id(body_id) else self._request_ids.new()
            # an explicit version: that one answers, no routing, no shadow
            handle = named if version is not None else core.pick(headers)
            metadata = handle.metadata
            request = handle.schema.parse_v2(payload, metadata.input_name, metadata.output_name, tensors)
            shadow = core.router.shadow if version is None else None
            model_started = time.perf_counter()
            predictions = await core.predict(handle, request.features)
            model_seconds = time.perf_counter() - model_started
        except RequestError as exc:
            await core.reject(send, exc, handle, request_id or self._request_ids.new())
            return
        response = {
            "model_name": name,
            "model_version": handle.version,
            "id": request.id if request.id is not None else request_id,
            "outputs": [
                {
                    "name": handle.metadata.output_name,
                    "shape": [len(predictions), 1],
                    "datatype": "FP32",
                    "data": predictions,
                }
            ],
        }
        extra = core.response_headers(handle, request_id, predictions)
        if request.binary_output:
            del response["outputs"][0]["data"]
            content, binary_headers = binary.encode_response(response, predictions)
            content_type = binary.CONTENT_TYPE
            extra.extend(binary_headers)
        else:
            content, content_type = orjson.dumps(response, option=http.NUMPY), http.JSON
        await core.answer(
            send,
            handle,
            request_id,
            request.features,
            predictions,
            content=content,
            extra=extra,
            started=started,
            model_seconds=model_seconds,
            shadow=shadow,
            content_type=content_type,
        )
