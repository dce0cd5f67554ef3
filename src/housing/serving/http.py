"""ASGI plumbing shared by the protocol handlers: the request's headers and body, JSON and raw responses.

No framework on purpose: a request is the ASGI scope plus its headers as one dict (built once), and a
response is two ASGI messages. Everything here is on the hot path, so it stays small.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from housing.serving.schema import RequestError, valid_request_id

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = dict[bytes, bytes]  # lower-case names (as ASGI servers give them); a repeated header: the last one
ResponseHeaders = list[tuple[bytes, bytes]]

JSON = b"application/json"
NUMPY = orjson.OPT_SERIALIZE_NUMPY
_REQUEST_IDS_PER_READ = 256  # one os.urandom call per this many generated request ids


class ClientDisconnectedError(Exception):
    """The client went away before its body arrived: nothing to answer."""


def request_headers(scope: Scope) -> Headers:
    return dict(scope["headers"])


def header_request_id(headers: Headers) -> str | None:
    """The X-Request-Id header when it is safe to echo and log; None otherwise (a new id is generated)."""
    value = headers.get(b"x-request-id")
    if value is None:
        return None
    candidate = value.decode("latin-1")
    return candidate if valid_request_id(candidate) else None


def routing_key(headers: Headers) -> str | None:
    """The X-Routing-Key header (hashed, never echoed or logged), or None when absent or empty."""
    value = headers.get(b"x-routing-key")
    if value is None:
        return None
    return value.decode("latin-1") or None


class RequestIds:
    """Random (version 4) UUIDs as 32 hex digits, from one ``os.urandom`` read per 256 ids."""

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0

    def new(self) -> str:
        start = self._next
        if start >= len(self._pool):
            self._pool, start = os.urandom(16 * _REQUEST_IDS_PER_READ), 0
        self._next = start + 16
        value = int.from_bytes(self._pool[start : start + 16], "big")
        # RFC 9562: version 4 in bits 48-51, variant 0b10 in bits 64-65.
        value = (value & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
        return f"{value:032x}"


async def read_body(headers: Headers, receive: Receive, limit: int) -> bytes:
    """The whole request body; 413 past ``limit`` bytes (declared or received)."""
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError("Content-Length: not an integer") from None
        if size > limit:
            raise RequestError(
                f"request body of {size} bytes exceeds the limit of {limit}", status=413, reason="too_large"
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


def loads(body: bytes | memoryview) -> Any:
    if not body:
        raise RequestError("request body: empty; send a JSON object", reason="invalid_json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body: not valid JSON ({exc})", reason="invalid_json") from None


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = JSON,
    extra: ResponseHeaders | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any, *, extra: ResponseHeaders | None = None) -> None:
    await send_bytes(send, status, orjson.dumps(data, option=NUMPY), extra=extra)
