"""The model server as a plain ASGI application: lifespan, dispatch by the route table, nothing else.

No web framework on purpose: a request costs one dict lookup or a few regular expressions
(:mod:`housing.serving.routes`), then the handler of its protocol (:mod:`~housing.serving.v1`,
:mod:`~housing.serving.v2`, :mod:`~housing.serving.feedback_route`). Everything a client can send ends in a
2xx/4xx JSON answer; anything unexpected is caught, logged and answered 500 without taking the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from housing.serving.core import ServingCore
from housing.serving.feedback import FeedbackStore
from housing.serving.feedback_route import FeedbackRoute
from housing.serving.http import (
    ClientDisconnectedError,
    Receive,
    RequestIds,
    Scope,
    Send,
    send_bytes,
    send_json,
)
from housing.serving.openapi import build_openapi
from housing.serving.routes import OPENAPI_PATH, ROUTES, RouteTable
from housing.serving.v1 import V1
from housing.serving.v2 import V2

log = logging.getLogger(__name__)


def _server_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("housing-mlops")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "0.0.0"


class ServingApp:
    """ASGI callable. Build it with :func:`housing.serving.server.build_app`."""

    def __init__(self, core: ServingCore) -> None:
        self.core = core
        # What tests and introspection reach for: the core's parts.
        self.router, self.settings, self.metrics = core.router, core.settings, core.metrics
        self.inference_log = core.inference_log
        router = core.router
        self.version = _server_version()
        request_ids = RequestIds()
        v1, v2 = V1(self.core, request_ids), V2(self.core, request_ids, self.version)
        champion = router.champion
        self._openapi = orjson.dumps(
            build_openapi(
                ROUTES,
                model_names=[router.name],
                versions=list(dict.fromkeys(handle.version for handle in router.handles)),
                schema=champion.schema,
                output_name=champion.metadata.output_name,
                server_version=self.version,
            )
        )
        self.handlers = {
            "v1_predict": v1.predict,
            "v2_infer": v2.infer,
            "feedback": FeedbackRoute(self.core),
            "v1_live": v1.live,
            "v1_models": v1.models,
            "v1_model_ready": self.core.model_ready,
            "v2_live": v2.live,
            "v2_ready": v2.ready,
            "v2_server_metadata": v2.server_metadata,
            "v2_model_metadata": v2.model_metadata,
            "v2_model_ready": self.core.model_ready,
            "metrics": self._metrics,
            "openapi": self._openapi_document,
        }
        self.routes = RouteTable(ROUTES, self.handlers)

    @property
    def shadow_feedback(self) -> FeedbackStore | None:
        """The challenger's feedback memory in shadow mode."""
        return self.core.shadow_feedback

    # --- ASGI entry point ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await self._dispatch(scope, receive, send)
            except ClientDisconnectedError:
                pass
            except Exception:  # never let one request take the server down
                log.exception("unhandled error", extra={"path": scope.get("path")})
                # The response may have started already, or the client is gone: then nothing more to send.
                with contextlib.suppress(Exception):
                    await send_json(send, 500, {"error": "internal server error"})
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        found = self.routes.resolve(path)
        if found is None:
            await send_json(send, 404, {"error": f"no route {path}; see {OPENAPI_PATH}"})
            return
        methods, params = found
        handler = methods.get(scope["method"])
        if handler is None:
            allowed = self.routes.allow(methods)
            await send_json(
                send,
                405,
                {"error": f"method {scope['method']} not allowed on {path}; use {allowed}"},
                extra=[(b"allow", allowed.encode())],
            )
            return
        await handler(scope, receive, send, params)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.inference_log is not None:
                    self.inference_log.start()
                router = self.router
                ab = {}
                if router.challenger is not None:
                    ab = {
                        "ab_mode": router.mode.value,
                        "challenger_version": router.challenger.version,
                        "challenger_share": router.challenger_share if router.split else None,
                    }
                log.info(
                    "server ready", extra={"model": router.name, "version": router.champion.version, **ab}
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # In-flight requests have been answered by now (uvicorn drains them first).
                self.core.accepting = False
                if self.inference_log is not None:
                    await asyncio.to_thread(self.inference_log.close)
                    # rows == written_rows + sum(dropped_rows) now: the books the fault tests check.
                    log.info("inference log flushed", extra=self.inference_log.accounting().as_dict())
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- operations: metrics and this server's OpenAPI document -------------------------------------------

    async def _metrics(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        await send_bytes(
            send, 200, generate_latest(self.metrics.registry), content_type=CONTENT_TYPE_LATEST.encode()
        )

    async def _openapi_document(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        await send_bytes(send, 200, self._openapi)
