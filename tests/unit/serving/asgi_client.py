"""Calling the serving ASGI app in-process (httpx's ASGI transport): no server, no port."""

from __future__ import annotations

import asyncio

import httpx


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())
