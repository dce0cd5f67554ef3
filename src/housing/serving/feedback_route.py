"""``POST /v1/feedback``: ground truth for earlier predictions, scored against what this process predicted."""

from __future__ import annotations

import time

from housing.serving.core import ServingCore
from housing.serving.http import Receive, Scope, Send, loads, read_body, request_headers, send_json
from housing.serving.model import ModelHandle
from housing.serving.schema import RequestError, parse_feedback


class FeedbackRoute:
    """``POST /v1/feedback``: score the actual values against what this process predicted, log them."""

    def __init__(self, core: ServingCore) -> None:
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        core = self.core
        try:
            body = await read_body(request_headers(scope), receive, core.settings.max_body_bytes)
            request_id, actuals = parse_feedback(loads(body))
            handle, predictions = core.feedback.take(request_id, actuals)
        except RequestError as exc:
            await send_json(send, exc.status, {"error": str(exc)})
            return
        score(handle, predictions, actuals)
        if core.shadow_feedback is not None:  # the challenger scored the same rows in shadow mode
            try:
                shadow_handle, shadow_predictions = core.shadow_feedback.take(request_id, actuals)
            except RequestError:
                pass  # the request was not scored in shadow (explicit version, shadow failure, evicted)
            else:
                score(shadow_handle, shadow_predictions, actuals)
        if core.inference_log is not None:
            core.inference_log.log_feedback(ts=time.time(), request_id=request_id, actuals=actuals)
        await send_json(send, 202, {"accepted": len(actuals)})


def score(handle: ModelHandle, predictions: list[float], actuals: list[float]) -> None:
    """Fold fed-back actuals into the variant's rolling scores and publish them."""
    scores = handle.scores.add(predictions, actuals)
    metrics = handle.metrics
    metrics.feedback.inc(len(actuals))
    metrics.mae.set(scores.mae)
    metrics.r2.set(scores.r2)
    metrics.ppe10.set(scores.ppe10)
    metrics.ppe.set(scores.ppe)
