"""KServe V1 protocol: liveness, the model list, model readiness and ``:predict``."""

from __future__ import annotations

import time

import orjson

from housing.serving import http
from housing.serving.core import ServingCore
from housing.serving.http import Receive, Scope, Send
from housing.serving.schema import RequestError

_ALIVE = b'{"status":"alive"}'


class V1:
    def __init__(self, core: ServingCore, request_ids: http.RequestIds) -> None:
        self.core = core
        self._request_ids = request_ids

    async def live(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        await http.send_bytes(send, 200, _ALIVE)

    async def models(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        await http.send_json(send, 200, {"models": [self.core.router.name]})

    async def predict(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:
        metrics = self.core.metrics
        metrics.in_flight_requests += 1
        try:
            await self._predict(scope, receive, send, params["model_name"])
        finally:
            metrics.in_flight_requests -= 1

    async def _predict(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        started = time.perf_counter()
        core = self.core
        headers = http.request_headers(scope)
        request_id = http.header_request_id(headers) or self._request_ids.new()
        handle = None
        try:
            core.known(name)
            handle = core.pick(headers)
            X = handle.schema.parse_v1(
                http.loads(await http.read_body(headers, receive, core.settings.max_body_bytes))
            )
            model_started = time.perf_counter()
            predictions = await core.predict(handle, X)
            model_seconds = time.perf_counter() - model_started
        except RequestError as exc:
            await core.reject(send, exc, handle, request_id)
            return
        await core.answer(
            send,
            handle,
            request_id,
            X,
            predictions,
            content=orjson.dumps({"predictions": predictions}, option=http.NUMPY),
            extra=core.response_headers(handle, request_id, predictions),
            started=started,
            model_seconds=model_seconds,
            shadow=core.router.shadow,
        )
