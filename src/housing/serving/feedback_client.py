"""What a feedback sender needs (``housing simulate traffic``, the closed loop, a labelling pipeline).

Read the bearer token from its file, send it as ``Authorization: Bearer <token>``, and echo the prediction's
``X-Feedback-Token`` with the actual values, so that any replica can score them; a response without one (more
rows than ``--feedback-token-max-rows``) falls back to its ``X-Request-Id``, which only the replica that
answered knows. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from housing.serving.feedback_auth import read_secret_file

FEEDBACK_PATH = "/v1/feedback"
TOKEN_HEADER = "X-Feedback-Token"  # noqa: S105 - a header name, not a secret
REQUEST_ID_HEADER = "X-Request-Id"


def read_feedback_token(path: Path) -> str:
    """The bearer token from its file (a mounted Secret); a ConfigError naming the file otherwise."""
    return read_secret_file(path, "feedback token")


def feedback_headers(token: str) -> dict[str, str]:
    """Request headers of ``POST /v1/feedback``."""
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def feedback_body(response_headers: Mapping[str, str], actuals: Sequence[float]) -> bytes:
    """The JSON body that feeds ``actuals`` (one per predicted instance) back for the prediction whose
    response had ``response_headers`` (any mapping whose ``get`` ignores case, as httpx's and urllib's do)."""
    token = response_headers.get(TOKEN_HEADER)
    if token:
        body: dict[str, object] = {"feedback_token": token}
    else:
        request_id = response_headers.get(REQUEST_ID_HEADER)
        if not request_id:
            raise ValueError(f"the response has neither {TOKEN_HEADER} nor {REQUEST_ID_HEADER}")
        body = {"request_id": request_id}
    values = [float(value) for value in actuals]
    if len(values) == 1:
        body["actual"] = values[0]
    else:
        body["actuals"] = values
    return json.dumps(body, separators=(",", ":")).encode()
