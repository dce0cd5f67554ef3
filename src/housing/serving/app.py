"""The model server as a plain ASGI application: KServe V1 + Open Inference Protocol (V2) routes.

No web framework on purpose: routing is a dict lookup plus two prefix matches, bodies are decoded with orjson
and validated by :mod:`housing.serving.schema`, and the ONNX session runs inline on the event loop (tens of
microseconds; a thread hop would cost more than the model). Everything a client can send ends in a 2xx/4xx
JSON answer; anything unexpected is caught, logged and answered 500 without taking the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from housing.experiments.routing import CHALLENGER, assign_variant
from housing.inference_log import InferenceLogWriter
from housing.serving.feedback import FeedbackStore
from housing.serving.metrics import ServingMetrics
from housing.serving.model import ModelHandle
from housing.serving.openapi import OPENAPI_PATH, build_openapi
from housing.serving.schema import RequestError, parse_feedback, valid_request_id
from housing.serving.settings import ServeSettings

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SERVER_NAME = "housing-model-server"
JSON = b"application/json"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


class ClientDisconnectedError(Exception):
    """The client went away before its body arrived: nothing to answer."""


class Router:
    """Chooses the model handle that answers a request: the champion, or champion/challenger (A/B).

    ``mode``: ``off`` (champion only; no routing work per request), ``split`` (a ``challenger_share`` of
    routing keys goes to the challenger, by :func:`housing.experiments.routing.assign_variant` on
    ``salt:key``; a request without a key is assigned at random with the same share) or ``shadow`` (the
    champion answers everything, the challenger scores the same rows afterwards).
    """

    def __init__(
        self,
        champion: ModelHandle,
        challenger: ModelHandle | None = None,
        *,
        mode: str = "off",
        challenger_share: float = 0.5,
        salt: str | None = None,
    ) -> None:
        if mode not in ("off", "split", "shadow"):
            raise ValueError(f"A/B mode must be off, split or shadow, got {mode!r}")
        if mode != "off" and challenger is None:
            raise ValueError(f"A/B mode {mode!r} needs a challenger model")
        if not 0.0 <= challenger_share <= 1.0:
            raise ValueError(f"challenger share must be in [0, 1], got {challenger_share}")
        self.champion = champion
        self.challenger = challenger if mode != "off" else None
        self.mode = mode
        self.name = champion.name
        self.challenger_share = challenger_share
        self.salt = salt or (f"{champion.version}/{challenger.version}" if challenger is not None else "")
        self.split = mode == "split"
        self.shadow = self.challenger if mode == "shadow" else None
        self._random = random.Random()  # requests without a routing key  # noqa: S311 - not security relevant

    @property
    def handles(self) -> list[ModelHandle]:
        return [self.champion] if self.challenger is None else [self.champion, self.challenger]

    def pick(self, routing_key: str | None = None) -> ModelHandle:
        """The handle that answers: by the hashed routing key in split mode, else the champion."""
        if not self.split:
            return self.champion
        assert self.challenger is not None
        if routing_key:
            chosen = assign_variant(routing_key, self.salt, self.challenger_share)
            return self.challenger if chosen == CHALLENGER else self.champion
        return self.challenger if self._random.random() < self.challenger_share else self.champion

    def ready(self) -> bool:
        return all(handle.ready for handle in self.handles)


def _server_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("housing-mlops")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "0.0.0"


class ServingApp:
    """ASGI callable. Build it with :func:`housing.serving.server.build_app`."""

    def __init__(
        self,
        router: Router,
        settings: ServeSettings,
        metrics: ServingMetrics,
        inference_log: InferenceLogWriter | None = None,
    ) -> None:
        self.router = router
        self.settings = settings
        self.metrics = metrics
        self.inference_log = inference_log
        self.feedback = FeedbackStore(settings.feedback_capacity_rows, settings.feedback_ttl_seconds)
        # Shadow mode: the challenger's predictions wait for the same feedback in a store of their own.
        self.shadow_feedback = (
            FeedbackStore(settings.feedback_capacity_rows, settings.feedback_ttl_seconds)
            if router.shadow is not None
            else None
        )
        self.version = _server_version()
        self.accepting = True  # False once shutdown starts: readiness turns 503
        self._random = random.Random()  # fault injection only  # noqa: S311 - not security relevant
        champion = router.champion
        self._openapi = orjson.dumps(
            build_openapi(
                model_names=[router.name],
                versions=list(dict.fromkeys(h.version for h in router.handles)),
                features=[{"name": f.name, "min": f.min, "max": f.max} for f in champion.metadata.features],
                output_name=champion.metadata.output_name,
                max_batch=settings.max_batch,
                server_version=self.version,
            )
        )
        self._static_get: dict[str, Callable[[], tuple[int, bytes, bytes]]] = {
            "/": lambda: (200, b'{"status":"alive"}', JSON),
            "/v2/health/live": lambda: (200, b'{"live":true}', JSON),
            "/v2/health/ready": self._server_ready,
            "/v2": self._server_metadata,
            "/v1/models": lambda: (200, orjson.dumps({"models": [self.router.name]}), JSON),
            "/metrics": self._metrics,
            OPENAPI_PATH: lambda: (200, self._openapi, JSON),
        }

    # --- ASGI entry point ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await self._http(scope, receive, send)
            except ClientDisconnectedError:
                pass
            except Exception:  # never let one request take the server down
                log.exception("unhandled error", extra={"path": scope.get("path")})
                # The response may have started already, or the client is gone: then nothing more to send.
                with contextlib.suppress(Exception):
                    await self._json(send, 500, {"error": "internal server error"})
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

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
                        "ab_mode": router.mode,
                        "challenger_version": router.challenger.version,
                        "challenger_share": router.challenger_share if router.split else None,
                    }
                log.info(
                    "server ready", extra={"model": router.name, "version": router.champion.version, **ab}
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # In-flight requests have been answered by now (uvicorn drains them first).
                self.accepting = False
                if self.inference_log is not None:
                    await asyncio.to_thread(self.inference_log.close)
                    log.info("inference log flushed", extra={"dropped_rows": self.inference_log.dropped_rows})
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "POST":
            if path.startswith("/v1/models/") and path.endswith(":predict"):
                with self.metrics.in_flight.track_inprogress():
                    return await self._v1_predict(path[11:-8], scope, receive, send)
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                name, version, tail = _split_v2_model_path(path)
                if tail == "infer":
                    with self.metrics.in_flight.track_inprogress():
                        return await self._v2_infer(name, version, scope, receive, send)
            if path == "/v1/feedback":
                return await self._feedback(scope, receive, send)
        elif method == "GET":
            static = self._static_get.get(path)
            if static is not None:
                status, body, content_type = static()
                return await self._send(send, status, body, content_type=content_type)
            if path.startswith("/v1/models/") and not path.endswith(":predict"):
                return await self._v1_model_ready(path[11:], send)
            if path.startswith("/v2/models/"):
                name, version, tail = _split_v2_model_path(path)
                if tail in ("", "ready"):
                    return await self._v2_model(name, version, tail == "ready", send)
        allowed = _allowed_methods(path)
        if allowed:
            return await self._json(
                send,
                405,
                {"error": f"method {method} not allowed on {path}; use {allowed}"},
                extra=[(b"allow", allowed.encode())],
            )
        return await self._json(send, 404, {"error": f"no route {path}; see {OPENAPI_PATH}"})

    # --- health, metadata, metrics ---------------------------------------------------------------------

    def _server_ready(self) -> tuple[int, bytes, bytes]:
        ready = self.accepting and self.router.ready()
        return (200 if ready else 503), orjson.dumps({"ready": ready}), JSON

    def _server_metadata(self) -> tuple[int, bytes, bytes]:
        return 200, orjson.dumps({"name": SERVER_NAME, "version": self.version, "extensions": []}), JSON

    def _metrics(self) -> tuple[int, bytes, bytes]:
        return 200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST.encode()

    def _known(self, name: str, version: str | None = None) -> ModelHandle:
        if name != self.router.name:
            raise RequestError(
                f"model {name!r} not found; this server serves {self.router.name!r}", status=404
            )
        if version is None:
            return self.router.champion
        for handle in self.router.handles:
            if handle.version == version:
                return handle
        raise RequestError(f"model {name!r} has no version {version!r}", status=404)

    async def _v1_model_ready(self, name: str, send: Send) -> None:
        try:
            handle = self._known(name)
        except RequestError as exc:
            await self._json(send, exc.status, {"error": str(exc)})
            return
        ready = self.accepting and handle.ready
        await self._json(send, 200 if ready else 503, {"name": name, "ready": ready})

    async def _v2_model(self, name: str, version: str | None, ready_only: bool, send: Send) -> None:
        try:
            handle = self._known(name, version)
        except RequestError as exc:
            await self._json(send, exc.status, {"error": str(exc)})
            return
        if ready_only:
            ready = self.accepting and handle.ready
            await self._json(send, 200 if ready else 503, {"name": name, "ready": ready})
            return
        await self._json(send, 200, handle.v2_metadata())

    # --- predictions -----------------------------------------------------------------------------------

    async def _v1_predict(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _header_request_id(scope) or uuid.uuid4().hex
        handle = None
        try:
            self._known(name)
            router = self.router
            handle = router.pick(_routing_key(scope)) if router.split else router.champion
            X = handle.schema.parse_v1(_loads(await self._body(scope, receive)))
            if router.shadow is None:
                predictions = await self._predict(handle, X)
            else:
                model_started = time.perf_counter()
                predictions = await self._predict(handle, X)
                model_seconds = time.perf_counter() - model_started
        except RequestError as exc:
            await self._prediction_error(send, exc, handle, request_id)
            return
        body = orjson.dumps({"predictions": predictions}, option=_NUMPY)
        latency = time.perf_counter() - started
        await self._send(send, 200, body, extra=[(b"x-request-id", request_id.encode()), *handle.headers])
        self._record(handle, request_id, X, predictions, latency)
        if router.shadow is not None:
            self._shadow_score(router.shadow, request_id, X, latency - model_seconds)

    async def _v2_infer(
        self, name: str, version: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        header_id = _header_request_id(scope)
        request_id = header_id or ""
        handle = None
        try:
            self._known(name, version)
            payload = _loads(await self._body(scope, receive))
            if header_id is None:  # without an X-Request-Id header the V2 "id" names the request
                body_id = payload.get("id") if type(payload) is dict else None
                request_id = body_id if valid_request_id(body_id) else uuid.uuid4().hex
            router = self.router
            if version is not None:
                handle = self._known(name, version)
            else:
                handle = router.pick(_routing_key(scope)) if router.split else router.champion
            request = handle.schema.parse_v2(payload, handle.metadata.input_name, handle.metadata.output_name)
            # Shadow scoring follows routed requests only (a request for an explicit version gets that one).
            shadow = router.shadow if version is None else None
            if shadow is None:
                predictions = await self._predict(handle, request.features)
            else:
                model_started = time.perf_counter()
                predictions = await self._predict(handle, request.features)
                model_seconds = time.perf_counter() - model_started
        except RequestError as exc:
            await self._prediction_error(send, exc, handle, request_id or uuid.uuid4().hex)
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
        body = orjson.dumps(response, option=_NUMPY)
        latency = time.perf_counter() - started
        await self._send(send, 200, body, extra=[(b"x-request-id", request_id.encode()), *handle.headers])
        self._record(handle, request_id, request.features, predictions, latency)
        if shadow is not None:
            self._shadow_score(shadow, request_id, request.features, latency - model_seconds)

    async def _predict(self, handle: ModelHandle, X: np.ndarray) -> np.ndarray:
        settings = self.settings
        if settings.fault_latency_ms > 0:
            await asyncio.sleep(settings.fault_latency_ms / 1000.0)
        if settings.fault_error_rate > 0 and self._random.random() < settings.fault_error_rate:
            raise RequestError("injected fault (--fault-error-rate is on)", status=500, reason="injected")
        try:
            return handle.predict(X)
        except Exception as exc:
            log.exception(
                "inference failed", extra={"model_version": handle.version, "variant": handle.variant}
            )
            raise RequestError(
                f"inference failed: {type(exc).__name__}", status=500, reason="model_error"
            ) from exc

    def _record(
        self,
        handle: ModelHandle,
        request_id: str,
        X: np.ndarray,
        predictions: np.ndarray,
        latency: float,
        *,
        shadow: bool = False,
    ) -> None:
        """After the response went out: metrics, feedback memory, inference log (queued, no I/O)."""
        handle.metrics.observe_success(latency, predictions)
        feedback = self.shadow_feedback if shadow else self.feedback
        assert feedback is not None
        feedback.remember(request_id, handle, predictions)
        if self.inference_log is not None:
            self.inference_log.log_predictions(
                ts=time.time(),
                request_id=request_id,
                model=handle.name,
                model_version=handle.version,
                variant=handle.variant,
                feature_names=handle.schema.names,
                features=X,
                predictions=predictions,
                latency_s=round(latency, 6),
                shadow=shadow,
            )

    def _shadow_score(self, challenger: ModelHandle, request_id: str, X: np.ndarray, overhead: float) -> None:
        """Shadow mode, after the champion's response went out: score the same rows with the challenger.

        Its latency is logged as the champion request's non-model time plus the challenger's own model time,
        what the request would have taken had the challenger answered, so the latency guardrail compares
        like with like. A failure is counted and logged against the challenger; the client never sees it.
        """
        started = time.perf_counter()
        try:
            predictions = challenger.predict(X)
        except Exception:
            log.exception(
                "shadow inference failed",
                extra={"model_version": challenger.version, "variant": "challenger"},
            )
            challenger.metrics.observe_error("model_error")
            if self.inference_log is not None:
                self.inference_log.log_error(
                    ts=time.time(),
                    request_id=request_id,
                    variant=challenger.variant,
                    model_version=challenger.version,
                    reason="model_error",
                )
            return
        latency = max(0.0, overhead) + (time.perf_counter() - started)
        self._record(challenger, request_id, X, predictions, latency, shadow=True)

    async def _prediction_error(
        self, send: Send, exc: RequestError, handle: ModelHandle | None, request_id: str
    ) -> None:
        extra = [(b"x-request-id", request_id.encode())]
        if handle is not None:  # a request for an unknown model is not this model's error
            extra.extend(handle.headers)
            handle.metrics.observe_error(exc.reason)
            if self.inference_log is not None:
                self.inference_log.log_error(
                    ts=time.time(),
                    request_id=request_id,
                    variant=handle.variant,
                    model_version=handle.version,
                    reason=exc.reason,
                )
        level = logging.WARNING if exc.status >= 500 else logging.DEBUG
        details = {"status": exc.status, "reason": exc.reason, "error": str(exc), "request_id": request_id}
        log.log(level, "request rejected", extra=details)
        await self._json(send, exc.status, {"error": str(exc)}, extra=extra)

    # --- feedback --------------------------------------------------------------------------------------

    async def _feedback(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            request_id, actuals = parse_feedback(_loads(await self._body(scope, receive)))
            handle, predictions = self.feedback.take(request_id, actuals)
        except RequestError as exc:
            await self._json(send, exc.status, {"error": str(exc)})
            return
        _score(handle, predictions, actuals)
        if self.shadow_feedback is not None:  # the challenger scored the same rows in shadow mode
            try:
                shadow_handle, shadow_predictions = self.shadow_feedback.take(request_id, actuals)
            except RequestError:
                pass  # the request was not scored in shadow (explicit version, shadow failure, evicted)
            else:
                _score(shadow_handle, shadow_predictions, actuals)
        if self.inference_log is not None:
            self.inference_log.log_feedback(ts=time.time(), request_id=request_id, actuals=actuals)
        await self._json(send, 202, {"accepted": len(actuals)})

    # --- HTTP plumbing ---------------------------------------------------------------------------------

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise RequestError("Content-Length: not an integer") from None
                if declared > limit:
                    raise RequestError(
                        f"request body of {declared} bytes exceeds the limit of {limit}",
                        status=413,
                        reason="too_large",
                    )
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnectedError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    f"request body exceeds the limit of {limit} bytes", status=413, reason="too_large"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    async def _send(
        send: Send, status: int, body: bytes, *, content_type: bytes = JSON, extra: list | None = None
    ) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _json(self, send: Send, status: int, data: Any, *, extra: list | None = None) -> None:
        await self._send(send, status, orjson.dumps(data, option=_NUMPY), extra=extra)


# --- module helpers ---------------------------------------------------------------------------------------


def _score(handle: ModelHandle, predictions: list[float], actuals: list[float]) -> None:
    """Fold fed-back actuals into the variant's rolling scores and publish them."""
    scores = handle.scores.add(predictions, actuals)
    metrics = handle.metrics
    metrics.feedback.inc(len(actuals))
    metrics.mae.set(scores.mae)
    metrics.r2.set(scores.r2)
    metrics.ppe10.set(scores.ppe10)
    metrics.ppe.set(scores.ppe)


def _routing_key(scope: Scope) -> str | None:
    """The X-Routing-Key header (hashed, never echoed or logged), or None when absent or empty."""
    for key, value in scope["headers"]:
        if key == b"x-routing-key":
            return value.decode("latin-1") or None
    return None


def _header_request_id(scope: Scope) -> str | None:
    """The X-Request-Id header when it is safe to echo and log; None otherwise (a new id is generated)."""
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if valid_request_id(candidate) else None
    return None


def _loads(body: bytes) -> Any:
    if not body:
        raise RequestError("request body: empty; send a JSON object", reason="invalid_json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body: not valid JSON ({exc})", reason="invalid_json") from None


def _split_v2_model_path(path: str) -> tuple[str, str | None, str]:
    """``/v2/models/<name>[/versions/<v>][/ready|/infer]`` -> (name, version, tail); tail "?" if unknown."""
    parts = path[len("/v2/models/") :].split("/")
    name, rest = parts[0], parts[1:]
    version = None
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    if not name or version == "":
        return name, version, "?"
    if not rest:
        return name, version, ""
    if len(rest) == 1 and rest[0] in ("ready", "infer"):
        return name, version, rest[0]
    return name, version, "?"


def _allowed_methods(path: str) -> str:
    """The methods a known route accepts (for 405 answers); "" for an unknown path."""
    if path in ("/", "/v2/health/live", "/v2/health/ready", "/v2", "/v1/models", "/metrics", OPENAPI_PATH):
        return "GET"
    if path == "/v1/feedback" or (path.startswith("/v1/models/") and path.endswith(":predict")):
        return "POST"
    if path.startswith("/v1/models/"):
        return "GET"
    if path.startswith("/v2/models/"):
        tail = _split_v2_model_path(path)[2]
        return {"": "GET", "ready": "GET", "infer": "POST"}.get(tail, "")
    return ""
