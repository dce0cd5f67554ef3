"""Calling the serving ASGI app in-process (httpx's ASGI transport): no server, no port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx


def metric_samples(app) -> dict[str, list]:
    """/metrics parsed: {family: [(sample name, labels, value), ...]}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = call(app, "GET", "/metrics").text
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)
    }


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


# --- feedback needs a credential: the same files the server reads in a pod -------------------------------

FEEDBACK_TOKEN = "feedback-token-for-the-tests-0123456789"
SIGNING_KEY = "feedback-signing-key-for-the-tests-0123456789"
AUTH = {"authorization": f"Bearer {FEEDBACK_TOKEN}"}


def feedback_settings(directory: Path) -> dict[str, Path]:
    """ServeSettings overrides: the feedback token and signing key files, written under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    token, key = directory / "feedback-token", directory / "feedback-signing-key"
    token.write_text(FEEDBACK_TOKEN + "\n")  # as `kubectl create secret --from-file` may keep it
    key.write_text(SIGNING_KEY)
    return {"feedback_token_file": token, "feedback_signing_key_file": key}


def feedback(app, body, *, token: str | None = FEEDBACK_TOKEN) -> httpx.Response:
    """POST /v1/feedback with the bearer token (None: without an Authorization header)."""
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    return call(app, "POST", "/v1/feedback", json=body, headers=headers)
