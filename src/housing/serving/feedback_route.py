"""``POST /v1/feedback``: ground truth for earlier predictions, from the labelling pipeline only.

The bearer token is checked before the body is read (401, counted). A body with ``feedback_token`` (the
prediction's ``X-Feedback-Token``) is scored by any replica from what the verified token says was predicted;
one with ``request_id`` only by the replica that remembers the prediction. Either way the exact accuracy
counters of the (variant, version) that predicted are incremented (they sum across replicas in PromQL), the
rolling gauges of this replica's handle for that version too, and the actual values are logged.
"""

from __future__ import annotations

import time

from housing.serving.core import ServingCore
from housing.serving.feedback import check_count
from housing.serving.feedback_auth import REALM
from housing.serving.http import (
    Receive,
    ResponseHeaders,
    Scope,
    Send,
    loads,
    read_body,
    request_headers,
    send_json,
)
from housing.serving.schema import RequestError, parse_feedback

_CHALLENGE: ResponseHeaders = [(b"www-authenticate", f'Bearer realm="{REALM}"'.encode())]


class FeedbackRoute:
    def __init__(self, core: ServingCore) -> None:
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send, params: dict) -> None:  # noqa: ARG002
        core = self.core
        headers = request_headers(scope)
        refusal = core.bearer.refusal(headers.get(b"authorization"))
        if refusal is not None:
            await self._refuse(send, RequestError(f"unauthorized: {refusal}", status=401), _CHALLENGE)
            return
        try:
            body = parse_feedback(loads(await read_body(headers, receive, core.settings.max_body_bytes)))
            if body.token is not None:
                assert core.signer is not None  # issued whenever feedback is accepted
                claim = core.signer.verify(body.token)
                if claim.model != core.router.name:
                    raise RequestError(
                        f"feedback_token: issued for model {claim.model!r}; this server serves "
                        f"{core.router.name!r}"
                    )
                check_count(claim.request_id, claim.predictions, body.actuals)
                request_id, predictions = claim.request_id, claim.predictions
                model, variant, version = claim.model, claim.variant, claim.version
                core.feedback.forget(request_id)  # so a request_id feedback cannot count it again here
            else:
                request_id = body.request_id
                assert request_id is not None  # parse_feedback: one of the two
                handle, predictions = core.feedback.take(request_id, body.actuals)
                model, variant, version = handle.name, handle.variant, handle.version
        except RequestError as exc:
            await self._refuse(send, exc)
            return
        actuals = body.actuals
        score(core, model, variant, version, predictions, actuals)
        if core.shadow_feedback is not None:  # the challenger scored the same rows in shadow mode
            try:
                shadow, shadow_predictions = core.shadow_feedback.take(request_id, actuals)
            except RequestError:
                pass  # not scored in shadow here (explicit version, shadow failure, evicted, another replica)
            else:
                score(core, shadow.name, shadow.variant, shadow.version, shadow_predictions, actuals)
        if core.inference_log is not None:
            core.inference_log.log_feedback(ts=time.time(), request_id=request_id, actuals=actuals)
        await send_json(send, 202, {"accepted": len(actuals)})

    async def _refuse(self, send: Send, exc: RequestError, extra: ResponseHeaders | None = None) -> None:
        self.core.metrics.feedback_rejections[exc.status].inc()
        await send_json(send, exc.status, {"error": str(exc)}, extra=extra)


def score(
    core: ServingCore, model: str, variant: str, version: str, predictions: list[float], actuals: list[float]
) -> None:
    """Count the feedback against the (variant, version) that predicted it; fold it into this replica's
    rolling gauges when this replica serves that version."""
    core.metrics.accuracy(model, variant, version).observe(predictions, actuals, core.settings.ppe_tolerance)
    for handle in core.router.handles:
        if handle.variant == variant and handle.version == version:
            scores = handle.scores.add(predictions, actuals)
            metrics = handle.metrics
            metrics.mae.set(scores.mae)
            metrics.r2.set(scores.r2)
            metrics.ppe10.set(scores.ppe10)
            metrics.ppe.set(scores.ppe)
            return
