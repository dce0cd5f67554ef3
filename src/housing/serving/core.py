"""What V1 and V2 share: the served models, running one, and accounting for every answer.

:class:`ServingCore` finds the handle a request names, runs the model inline on the event loop (tens of
microseconds; a thread hop would cost more than the model), injects faults when asked, and after the response
went out records the prediction: metrics, the memory that ground-truth feedback is scored against, and the
inference log (queued, no I/O on the request path). It also scores the challenger in shadow mode and accounts
for refused requests. The protocol modules only parse and format.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time

import numpy as np

from housing.inference_log import InferenceLogWriter
from housing.serving.feedback import FeedbackStore
from housing.serving.feedback_auth import BearerCheck
from housing.serving.feedback_token import TOKEN_HEADER, FeedbackSigner
from housing.serving.http import (
    JSON,
    Headers,
    Receive,
    ResponseHeaders,
    Scope,
    Send,
    routing_key,
    send_bytes,
    send_json,
)
from housing.serving.metrics import ServingMetrics
from housing.serving.model import ModelHandle
from housing.serving.router import Router
from housing.serving.schema import RequestError
from housing.serving.settings import ServeSettings
from housing.variants import Variant

log = logging.getLogger(__name__)


class ServingCore:
    def __init__(
        self,
        router: Router,
        settings: ServeSettings,
        metrics: ServingMetrics,
        inference_log: InferenceLogWriter | None = None,
        *,
        bearer: BearerCheck | None = None,
        signing_key: bytes | None = None,
    ) -> None:
        self.router = router
        self.settings = settings
        self.metrics = metrics
        self.inference_log = inference_log
        self.bearer = bearer or BearerCheck(None)  # no token: feedback is refused
        # No feedback accepted, no tokens issued. No shared key: tokens are valid on this process only.
        self.signer = (
            FeedbackSigner(
                signing_key or os.urandom(32),
                ttl_seconds=settings.feedback_ttl_seconds,
                max_rows=settings.feedback_token_max_rows,
            )
            if self.bearer.enabled
            else None
        )
        self.feedback = FeedbackStore(settings.feedback_capacity_rows, settings.feedback_ttl_seconds)
        # Shadow mode: the challenger's predictions wait for the same feedback in a store of their own.
        self.shadow_feedback = (
            FeedbackStore(settings.feedback_capacity_rows, settings.feedback_ttl_seconds)
            if router.shadow is not None
            else None
        )
        self.accepting = True  # False once shutdown starts: readiness turns 503
        self._faults = settings.fault_error_rate > 0 or settings.fault_latency_ms > 0
        self._random = random.Random()  # fault injection only  # noqa: S311 - not security relevant

    def ready(self, handle: ModelHandle | None = None) -> bool:
        return self.accepting and (self.router.ready() if handle is None else handle.ready)

    async def model_ready(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        """V1 ``GET /v1/models/<name>`` and V2 ``GET /v2/models/<name>[/versions/<v>]/ready``: one answer."""
        name = params["model_name"]
        try:
            handle = self.known(name, params.get("model_version"))
        except RequestError as exc:
            await send_json(send, exc.status, {"error": str(exc)})
            return
        ready = self.ready(handle)
        await send_json(send, 200 if ready else 503, {"name": name, "ready": ready})

    def known(self, name: str, version: str | None = None) -> ModelHandle:
        """The handle a URL names (the champion when no version is given); 404 otherwise."""
        router = self.router
        if name != router.name:
            raise RequestError(f"model {name!r} not found; this server serves {router.name!r}", status=404)
        if version is None:
            return router.champion
        handle = router.version(version)
        if handle is None:
            raise RequestError(f"model {name!r} has no version {version!r}", status=404)
        return handle

    def pick(self, headers: Headers) -> ModelHandle:
        """The handle that answers a request: by its X-Routing-Key in split mode, else the champion."""
        router = self.router
        return router.pick(routing_key(headers)) if router.split else router.champion

    async def predict(self, handle: ModelHandle, X: np.ndarray) -> np.ndarray:
        if self._faults:
            await self._inject_faults()
        try:
            return await handle.batcher.predict(X)
        except Exception as exc:
            log.exception(
                "inference failed", extra={"model_version": handle.version, "variant": handle.variant}
            )
            raise RequestError(
                f"inference failed: {type(exc).__name__}", status=500, reason="model_error"
            ) from exc

    async def _inject_faults(self) -> None:
        settings = self.settings
        if settings.fault_latency_ms > 0:
            await asyncio.sleep(settings.fault_latency_ms / 1000.0)
        if settings.fault_error_rate > 0 and self._random.random() < settings.fault_error_rate:
            raise RequestError("injected fault (--fault-error-rate is on)", status=500, reason="injected")

    def token_header(self, handle: ModelHandle, request_id: str, predictions: np.ndarray) -> ResponseHeaders:
        """``X-Feedback-Token`` of a response (none past ``--feedback-token-max-rows`` rows, nor when this
        server accepts no feedback)."""
        if self.signer is None:
            return []
        token = self.signer.issue(request_id, handle.name, handle.version, handle.variant, predictions)
        return [] if token is None else [(TOKEN_HEADER, token)]

    def response_headers(
        self, handle: ModelHandle, request_id: str, predictions: np.ndarray
    ) -> ResponseHeaders:
        """A prediction's headers: its request id, the model's version headers and its feedback token."""
        return [
            (b"x-request-id", request_id.encode()),
            *handle.headers,
            *self.token_header(handle, request_id, predictions),
        ]

    async def answer(
        self,
        send: Send,
        handle: ModelHandle,
        request_id: str,
        X: np.ndarray,
        predictions: np.ndarray,
        *,
        content: bytes,
        extra: ResponseHeaders,
        started: float,
        model_seconds: float,
        shadow: ModelHandle | None,
        content_type: bytes = JSON,
    ) -> None:
        """Send a prediction's 200 response, then record it; a shadow challenger (if any) scores it."""
        latency = time.perf_counter() - started
        await send_bytes(send, 200, content, content_type=content_type, extra=extra)
        self.record(handle, request_id, X, predictions, latency)
        if shadow is not None:
            self.shadow_score(shadow, request_id, X, latency - model_seconds)

    def record(
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

    def shadow_score(self, challenger: ModelHandle, request_id: str, X: np.ndarray, overhead: float) -> None:
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
                extra={"model_version": challenger.version, "variant": Variant.CHALLENGER.value},
            )
            self._count_error(challenger, request_id, "model_error")
            return
        latency = max(0.0, overhead) + (time.perf_counter() - started)
        self.record(challenger, request_id, X, predictions, latency, shadow=True)

    async def reject(
        self, send: Send, exc: RequestError, handle: ModelHandle | None, request_id: str
    ) -> None:
        """Answer a refused predict/infer request, counted against the handle it was meant for."""
        extra: ResponseHeaders = [(b"x-request-id", request_id.encode())]
        if handle is not None:  # a request for an unknown model is not this model's error
            extra.extend(handle.headers)
            self._count_error(handle, request_id, exc.reason)
        level = logging.WARNING if exc.status >= 500 else logging.DEBUG
        details = {"status": exc.status, "reason": exc.reason, "error": str(exc), "request_id": request_id}
        log.log(level, "request rejected", extra=details)
        await send_json(send, exc.status, {"error": str(exc)}, extra=extra)

    def _count_error(self, handle: ModelHandle, request_id: str, reason: str) -> None:
        handle.metrics.observe_error(reason)
        if self.inference_log is not None:
            self.inference_log.log_error(
                ts=time.time(),
                request_id=request_id,
                variant=handle.variant,
                model_version=handle.version,
                reason=reason,
            )
