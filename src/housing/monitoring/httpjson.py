"""Tiny JSON-over-HTTP client on the standard library (the serving image carries no ``requests``).

Used by the retrain trigger (GitHub API), the canary controller (Prometheus API) and Slack notifications.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ALLOWED_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def text(self, limit: int = 300) -> str:
        return self.body[:limit].decode("utf-8", errors="replace")


def check_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL; urllib would also open file:// and ftp://."""
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES or not parts.netloc:
        raise ValueError(f"URL {url!r} must be an absolute http:// or https:// URL")
    return url


def request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResponse:
    """Send one request (JSON or raw ``data`` body); HTTP error statuses are returned, network failures
    raise ``OSError``."""
    all_headers = {"Accept": "application/json", **(headers or {})}
    if json_body is not None:
        data = json.dumps(json_body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    # check_url() allows only http(s): urllib would otherwise also open file:// URLs.
    req = urllib.request.Request(check_url(url), data=data, headers=all_headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310  # nosec B310
            return HttpResponse(resp.status, resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpResponse(exc.code, exc.read())
