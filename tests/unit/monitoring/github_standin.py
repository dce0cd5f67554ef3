"""A local stand-in for GitHub's REST API: records POST /repos/{owner}/{repo}/dispatches.

Shared by tests/unit/monitoring and tests/integration/monitoring.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import LoopbackServer, QuietHandler


class GitHubStandin(LoopbackServer):
    def __init__(self, repository: str = "acme/housing-mlops", token: str = "ghp_test_token") -> None:
        self.repository, self.token = repository, token
        self.dispatches: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.fail_next: list[int] = []  # statuses to answer before succeeding again
        self.lock = threading.Lock()
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                record = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
                with outer.lock:
                    if self.path != f"/repos/{outer.repository}/dispatches":
                        status = 404
                    elif self.headers.get("Authorization") != f"Bearer {outer.token}":
                        status = 401
                    elif outer.fail_next:
                        status = outer.fail_next.pop(0)
                    else:
                        status = 204
                    (outer.dispatches if status == 204 else outer.rejected).append(record)
                self.send_response(status)
                if status == 204:
                    self.end_headers()
                    return
                data = json.dumps({"message": "stand-in refusal"}).encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
